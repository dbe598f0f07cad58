/** Base class of every error ecomla throws on purpose: the message names what was expected and what was found. */
export class EcomlaError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A name asked of the registry that no loaded plugin registered. */
export class UnknownNameError extends EcomlaError {}

/** A plugin package that cannot be imported, or that does not export a valid plugin. */
export class PluginLoadError extends EcomlaError {
  constructor(
    message: string,
    options?: { cause?: unknown },
    /** True when the package could not be found at all (as opposed to failing to load). */
    readonly notInstalled = false,
  ) {
    super(message, options);
  }
}

/** A configuration file or value that does not have the expected form. */
export class ConfigError extends EcomlaError {}

/** Shapes, dtypes or sizes that do not fit together. */
export class ShapeError extends EcomlaError {}
