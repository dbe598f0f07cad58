export { hfHome, hubIdOfPath, hubSettings, parseHubId, repoFolderName, type HubRef, type HubSettings } from "./env.js";
export { isModelFile, pickDataFiles, resolveDatasetSource, resolveModelSource, type DownloadProgress, type ResolveOptions } from "./download.js";
export { filesToPush, pushModel, type PushOptions } from "./push.js";
