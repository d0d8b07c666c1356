// Settings that must be in the environment before native addons load, so this module
// is imported first by every entry point.
// lz4-napi allocates with mimalloc, which by default keeps freed pages for a while:
// with a frame per MiB of disk that is hundreds of MiB of RSS. Return them at once.
process.env.MIMALLOC_PURGE_DELAY ??= '0';
process.env.MIMALLOC_ARENA_EAGER_COMMIT ??= '0';
