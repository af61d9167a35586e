import type { Logger } from 'pino';
import { ConfigError } from '../errors.js';
import type { WriteMode } from '../pipeline/write-gate.js';
import type { ConditionalWriteSupport } from './object-store.js';

export interface WriteModeOptions {
  /** `s3.conditional_writes`. */
  readonly setting: 'auto' | boolean;
  /** Asks the endpoint once (S3Store.probeConditionalWrites). @throws StoreError when it cannot be asked now. */
  readonly probe: (bucket: string) => Promise<ConditionalWriteSupport>;
  readonly log: Logger;
  /** The config file, for messages that name the key. */
  readonly source: string;
}

/**
 * Decides, once per bucket, how writes are gated, and says in the log which mode runs. A probe that cannot
 * reach S3 decides nothing: it is asked again at the next write, which could not have gone through either.
 */
export class WriteModes {
  private readonly decided = new Map<string, Promise<WriteMode>>();

  constructor(private readonly options: WriteModeOptions) {}

  /**
   * @throws ConfigError when `conditional_writes = true` and the endpoint refuses or ignores the headers.
   * @throws StoreError when the endpoint could not be probed (retryable: try again later).
   */
  modeFor(bucket: string): Promise<WriteMode> {
    let mode = this.decided.get(bucket);
    if (!mode) {
      mode = this.decide(bucket);
      this.decided.set(bucket, mode);
      // Forget a failed probe, so the next write asks again.
      mode.catch(() => this.decided.delete(bucket));
    }
    return mode;
  }

  private async decide(bucket: string): Promise<WriteMode> {
    const { setting, log, source } = this.options;
    if (setting === false) {
      log.info({ bucket, mode: 'head-first' }, 'conditional writes off (s3.conditional_writes = false): a HEAD precedes every write');
      return 'head-first';
    }
    const support = await this.options.probe(bucket);
    if (support === 'honoured') {
      log.info({ bucket, mode: 'conditional' }, 'conditional writes on: every write carries If-None-Match or If-Match');
      return 'conditional';
    }
    const what = support === 'refused' ? 'refuses' : 'ignores';
    if (setting === true) {
      throw new ConfigError(
        `${source}: s3.conditional_writes = true, but the endpoint ${what} If-Match/If-None-Match on bucket ${bucket}: set it to "auto" or false`,
      );
    }
    log.warn(
      { bucket, mode: 'head-first' },
      `the endpoint ${what} conditional writes (If-Match/If-None-Match): a HEAD precedes every write instead`,
    );
    return 'head-first';
  }
}
