// Types of the ES module entry (src/index.mjs): those of the CommonJS one.
export * from './index.js';
import type * as client from './index.js';
declare const _default: typeof client;
export default _default;
