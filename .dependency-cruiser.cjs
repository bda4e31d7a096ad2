/**
 * The import rules of the codebase (README, "Architecture"): workers/ -> jobs/ -> src/.
 * Only src/cli/ (it starts workers) may reach up. Run by `npm run lint`.
 */
module.exports = {
  forbidden: [
    {
      name: 'src-does-not-reach-up',
      comment:
        'src/ is the library: queue names and job data live here, so nothing in it needs jobs/ or workers/ (src/cli/ starts workers and may)',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^(jobs|workers)/' },
    },
    {
      name: 'jobs-do-not-reach-up',
      comment: 'a job handler is started by a worker, never the other way round',
      severity: 'error',
      from: { path: '^jobs/' },
      to: { path: '^workers/' },
    },
    {
      name: 'simulator-states-its-own-contract',
      comment:
        "the simulator checks requests with its own limits table (src/simulator/contract.ts): it may share the wire types (api.ts), errors, format sniffing (media.ts) and the catalog's types and override parser, never the pipeline's rules (planner, tokens, batcher)",
      severity: 'error',
      from: { path: '^src/simulator/' },
      to: { path: '^src/', pathNot: '^src/(simulator/|api\\.ts$|errors\\.ts$|media\\.ts$|models\\.ts$)' },
    },
    {
      name: 'no-circular',
      comment: 'a cycle makes the order of module initialisation matter',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(node_modules|dist|test/python/.venv)' },
  },
};
