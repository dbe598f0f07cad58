// Public API of @ecomla/plot: chart specs (Vega), headless SVG rendering, and a label check.
export { linePanelsSpec, scatterSpec, perplexityByPositionSpec, placeLabels, renderSvg, textWidth, type Series, type Panel, type LabelledPoint, type PlacedLabel, type Box } from "./charts.js";
export { svgTextBoxes, labelProblems, type TextBox } from "./check.js";
