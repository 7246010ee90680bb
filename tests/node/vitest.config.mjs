// Runs only the wrapper(s) in wrap/: vitest 4 excludes node_modules, so the suite's own
// packaged runner is never found (upstream bug #284); the wrapper imports it instead.
export default {
  test: {
    include: ["wrap/*.test.mjs"],
  },
}
