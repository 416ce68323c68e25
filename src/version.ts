declare const __ZBM_VERSION__: string | undefined;

/** Replaced at bundle time by scripts/build.mjs; running from source reports a dev version. */
export const VERSION: string = typeof __ZBM_VERSION__ === 'string' ? __ZBM_VERSION__ : '0.0.0-dev';
