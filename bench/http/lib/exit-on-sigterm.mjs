// Preloaded only in profile mode: --cpu-prof writes its file on a normal exit, which
// a default SIGTERM would skip.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
