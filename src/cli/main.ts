/**
 * The `mm-ingest` command line. Each command lives in its own module and registers
 * itself here; this file only builds the program and turns errors into one clear line.
 */
import { Command, CommanderError } from 'commander';
import { redactWrites } from '../redact.js';
import { registerSimulateCommand } from '../simulator/cli.js';
import { registerDashboardCommand } from './dashboard.js';
import { registerDoctorCommand } from './doctor.js';
import { exitWithError } from './exit.js';
import { registerFailureCommands } from './failures.js';
import { registerListenCommand } from './listen.js';
import { registerModelsCommand } from './models.js';
import { registerReindexCommands } from './reindex.js';
import { registerReportCommands } from './report.js';
import { registerPipelineCommands } from './pipeline.js';

export function buildProgram(): Command {
  const program = new Command('mm-ingest')
    .description(
      "Index an S3 bucket's texts, images and videos into Qdrant through a multimodal embedding API, queued in BullMQ.",
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)');
  registerPipelineCommands(program);
  registerFailureCommands(program);
  registerReindexCommands(program);
  registerListenCommand(program);
  registerReportCommands(program);
  registerModelsCommand(program);
  registerDashboardCommand(program);
  registerDoctorCommand(program);
  registerSimulateCommand(program);
  return program;
}

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  // The AWS SDK warns on every S3 client that its 2027 releases need Node 22: true, and said
  // once in the README (Node 20.19+, 22 and 24 are supported), not on every command's stderr.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // whatever a command prints, its error line included, shows no secret (redact.ts)
  redactWrites(process.stdout);
  redactWrites(process.stderr);
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(argv as string[]);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    exitWithError(err);
  }
}
