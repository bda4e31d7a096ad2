/**
 * The import rules of the codebase (README, "Architecture"): workers/ -> jobs/ -> src/.
 * Only src/cli/ (it starts workers) may reach up. Run by `npm run lint`.
 */
module.exports = {
  forbidden: [
    {
      name: 'src-does-not-reach-up',
      comment: 'src/ is the library: queue names and job data live here, so nothing in it needs jobs/ or workers/ (src/cli/ starts workers and may)',
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
