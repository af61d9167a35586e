// Loads sftppush's one native addon (native/*.cc, binding.gyp target sftppush_inotify), shared by every port
// built on it: the inotify binding (src/watch/inotify.ts) and flock (src/native/flock.ts).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { SftppushError } from '../errors.js';

const BINARY_NAME = 'sftppush_inotify.node';

/** The addon could not be loaded: not built (`npm ci`), built for another Node, or not Linux. */
export class NativeAddonLoadError extends SftppushError {
  constructor(
    readonly path: string,
    options: { cause: unknown },
  ) {
    const reason = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(
      'ERR_NATIVE_LOAD',
      `cannot load native addon ${path}: ${reason} (run \`npm ci\` or \`npx node-gyp rebuild\`; it is Linux-only)`,
      options,
    );
  }
}

/** Path of the .node file: in SFTPPUSH_NATIVE_DIR (e.g. a Node 24 build) if set, else in <root>/build/Release. */
export function nativeBindingPath(): string {
  const override = process.env.SFTPPUSH_NATIVE_DIR;
  if (override !== undefined && override !== '') return path.resolve(override, BINARY_NAME);
  // Compiled location is dist/src/native/addon.js, so the package root is three levels up.
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  return path.join(root, 'build', 'Release', BINARY_NAME);
}

let addon: object | undefined;

/**
 * The addon's exports, loaded on first use (not at import, so modules that merely import a port's constants work
 * where the addon is not built) and then shared. `Slice` is the part of the exports the caller uses, declared by
 * the caller; it is not checked. Throws NativeAddonLoadError; a failed load is tried again on the next call.
 */
export function loadNativeAddon<Slice extends object>(): Slice {
  if (addon === undefined) {
    const file = nativeBindingPath();
    try {
      addon = createRequire(import.meta.url)(file) as object;
    } catch (err) {
      throw new NativeAddonLoadError(file, { cause: err });
    }
  }
  return addon as Slice;
}
