// Entry point for running the CLI from the TypeScript sources (`node --import tsx src/cli/run.ts`),
// as the tests do; the installed `mm-ingest` binary runs the compiled main instead.
import { main } from './main.js';

await main(process.argv);
