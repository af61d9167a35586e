import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { runReconcileOnce, runStatus, runWatch } from './app.js';
import { loadConfig, selectTargets, type Config, type ConfigOverrides } from './config.js';
import { ConfigError, describeCause } from './errors.js';
import { createLogger, LOG_LEVELS, type LogLevel } from './log.js';
import { parseSince } from './reconcile/since.js';
import { escapeControl, formatReconcileSummary } from './status.js';

const EXIT_OK = 0;
const EXIT_RUNTIME = 1;
const EXIT_USAGE = 2;

interface CommonOptions {
  config: string;
  logLevel: LogLevel;
}

function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer`);
    return n;
  };
}

function nonNegativeInt(flag: string) {
  return (value: string): number => {
    // Number('') is 0: an empty value is a mistake, never "no settle time".
    const n = value.trim() === '' ? Number.NaN : Number(value);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${flag} must be a whole number of seconds, 0 or more`);
    return n;
  };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Flags as commander names them (`--target` repeated arrives as `target`). */
type ConfigFlags = CommonOptions & Omit<ConfigOverrides, 'targets'> & { target?: string[] };

type ReconcileFlags = ConfigFlags & { since?: string; verify?: boolean; dryRun?: boolean; json?: boolean; settle?: number };

function configFrom(options: ConfigFlags, explicit: boolean): Config {
  return loadConfig(options.config, { ...options, targets: options.target }, { optional: !explicit });
}

function buildProgram(run: (code: Promise<number> | number) => void): Command {
  const program = new Command('sftppush')
    .description('Archive every file that lands in the watched directories to S3, exactly once.')
    .version(version())
    .exitOverride()
    .showHelpAfterError();
  const configOption = () => new Option('--config <file>', 'configuration file').default('config.toml');
  const logOption = () => new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info');

  program
    .command('watch')
    .description('watch the targets and archive every file that lands there (the long-running service)')
    .addOption(configOption())
    .option('--target <dir>', 'watch this directory instead of the configured targets (repeatable)', collect, [])
    .option('--bucket <bucket>', 'S3 bucket')
    .option('--prefix <prefix>', 'key prefix')
    .option('--endpoint <url>', 'S3 endpoint URL')
    .option('--ledger <file>', 'ledger database file')
    .option('--concurrency <n>', 'parallel uploads', positiveInt('--concurrency'))
    .addOption(logOption())
    .action((options: ConfigFlags, command: Command) => {
      const config = configFrom(options, command.getOptionValueSource('config') === 'cli');
      run(runWatch(config, createLogger(options.logLevel)));
    });

  program
    .command('status')
    .description('what the ledger says: counts, failures, or one file\'s whole story')
    .argument('[path]', 'a file, relative to its target or absolute')
    .addOption(configOption())
    .option('--ledger <file>', 'ledger database file (no config needed)')
    .option('--json', 'machine-readable output')
    .option('--failed', 'list files retrying, quarantined or gone')
    .action((pathArg: string | undefined, options: CommonOptions & { ledger?: string; json?: boolean; failed?: boolean }, command: Command) => {
      run(printStatus(pathArg, options, command.getOptionValueSource('config') === 'cli'));
    });

  program
    .command('reconcile')
    .description('scan every target once, archive whatever the ledger lacks, and exit')
    .addOption(configOption())
    .option('--since <when>', 'only files modified since WHEN: an ISO date or date-time, or a span (90m, 6h, 7d, 2w)')
    .option('--verify', 'also check every archived object in scope against S3, and upload again what is missing or replaced')
    .option('--dry-run', 'report what would be queued or uploaded again; write nothing to S3 or the ledger\'s states')
    .option('--json', 'print the result as one JSON object (log lines go to stderr)')
    .option('--target <dir>', 'reconcile only this configured target, or this directory in one (repeatable)', collect, [])
    .option('--settle <seconds>', 'override reconcile.settle_seconds for this run', nonNegativeInt('--settle'))
    .option('--ledger <file>', 'ledger database file')
    .addOption(logOption())
    .action((options: ReconcileFlags, command: Command) => {
      const targets = options.target ?? [];
      const configured = configFrom({ ...options, target: [] }, command.getOptionValueSource('config') === 'cli');
      const selection = targets.length > 0 ? selectTargets(configured, targets) : undefined;
      const config = selection?.config ?? configured;
      const sinceMs = options.since === undefined ? undefined : parseSince(options.since, Date.now());
      const json = options.json === true;
      // With --json, stdout is the result alone: the log goes to stderr.
      const log = createLogger(options.logLevel, json ? process.stderr : undefined);
      const result = runReconcileOnce(config, log, {
        sinceMs,
        verify: options.verify === true,
        dryRun: options.dryRun === true,
        settleSeconds: options.settle,
        subtrees: selection?.subtrees,
        targetsPartial: selection?.partial ?? false,
        progress: process.stderr.isTTY && !json ? 'bar' : 'log',
      });
      run(
        result.then(({ code, summary }) => {
          process.stdout.write(`${json ? JSON.stringify(summary) : formatReconcileSummary(summary)}\n`);
          return code;
        }),
      );
    });
  return program;
}

function printStatus(
  pathArg: string | undefined,
  options: CommonOptions & { ledger?: string; json?: boolean; failed?: boolean },
  explicitConfig: boolean,
): number {
  const config = options.ledger && !explicitConfig ? undefined : loadConfig(options.config, {}, { optional: false });
  const result = runStatus({
    ledgerPath: options.ledger ?? config?.ledger.path ?? '',
    config,
    json: options.json === true,
    failed: options.failed === true,
    path: pathArg,
  });
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  return result.code;
}

/** argv -> command -> exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const outcome: { code: Promise<number> | number } = { code: EXIT_OK };
  const program = buildProgram((code) => {
    outcome.code = code;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return await outcome.code;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    // Messages name paths an SFTP user or an operator chose (a ledger, a target, a config file): escaped as
    // status escapes names, so no control character reaches the terminal raw.
    if (error instanceof ConfigError) {
      process.stderr.write(`sftppush: ${escapeControl(error.message)}\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`sftppush: ${escapeControl(describeCause(error))}\n`);
    return EXIT_RUNTIME;
  }
}
