/** Types of infra/ui-build.mjs (plain JavaScript, so bootstrap.mjs can run it before tsx). */
export declare const uiDist: (root: string) => string;
export declare function uiInputsHash(root: string): string;
export declare function ensureUiBuild(root: string, log?: (line: string) => void): Promise<string>;
