// Counters of what the server hands out to readers (restores, file access): shown at
// /api/v1/stats and in the Prometheus metrics.
export const readStats = {
  chunksServed: 0,
  chunkBytesServed: 0,
};
