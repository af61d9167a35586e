// config.toml -> validated, frozen Config: what an operator sees when the file is right, and when it is not.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { DEFAULT_IGNORE, loadConfig, prepareAfterDirectories, selectTargets, validateConfig, type Config } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

/** The shipped demo configuration at the repository root (tests run from dist/test/unit). */
const SHIPPED = fileURLToPath(new URL('../../../config.toml', import.meta.url));
const FILE = '/etc/sftppush/config.toml';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sftppush-config-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

let written = 0;
/** Writes a config file in its own directory (relative paths resolve against it) and returns its path. */
function writeConfig(text: string): string {
  const dir = path.join(scratch, `c${++written}`);
  fs.mkdirSync(dir);
  const file = path.join(dir, 'config.toml');
  fs.writeFileSync(file, text);
  return file;
}

/** The smallest valid document, with the given tables merged over it. */
function minimal(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { s3: { bucket: 'archive-bucket' }, targets: [{ path: 'incoming' }], ...extra };
}

/** Asserts a ConfigError whose message names the file and matches every pattern. */
function assertConfigError(run: () => unknown, file: string, ...patterns: RegExp[]): string {
  let message = '';
  assert.throws(run, (error) => {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    message = error.message;
    return true;
  });
  assert.ok(message.includes(file), `message does not name the file ${file}: ${message}`);
  for (const pattern of patterns) assert.match(message, pattern);
  return message;
}

void describe('the shipped config.toml', () => {
  void test('loads as the demo configuration, with paths resolved against its directory', () => {
    const config = loadConfig(SHIPPED);
    const dir = path.dirname(SHIPPED);
    assert.equal(config.source, SHIPPED);
    assert.equal(config.s3.bucket, 'sftppush-demo');
    assert.equal(config.s3.endpoint, 'http://127.0.0.1:4566');
    assert.equal(config.s3.forcePathStyle, true);
    assert.equal(config.s3.prefix, '');
    assert.equal(config.s3.quarantinePrefix, '_quarantine/');
    assert.equal(config.ledger.path, path.join(dir, 'var/ledger.db'));
    assert.equal(config.reconcile.schedule, '*/5 * * * *');
    assert.equal(config.reconcile.settleSeconds, 30);
    assert.equal(config.upload.concurrency, 8);
    assert.deepEqual(config.upload.after, { kind: 'keep' });
    assert.equal(config.targets.length, 1);
    // An existing target is watched at its real path (a symlinked target must be named one way).
    const target = path.join(dir, 'local_test_dir');
    assert.equal(config.targets[0]?.path, fs.existsSync(target) ? fs.realpathSync(target) : target);
    assert.deepEqual(config.targets[0]?.ignore, [...DEFAULT_IGNORE]);
    assert.equal(config.targets[0]?.bucket, 'sftppush-demo');
  });
});

void describe('defaults', () => {
  void test('a minimal file gets the documented defaults', () => {
    const config = validateConfig(minimal(), FILE);
    assert.deepEqual(config.s3, {
      bucket: 'archive-bucket',
      prefix: '',
      quarantinePrefix: '_quarantine/',
      endpoint: undefined,
      forcePathStyle: false,
      region: undefined,
      objectOptions: { storageClass: undefined, sse: undefined, kmsKeyId: undefined, tags: undefined },
      conditionalWrites: 'auto',
    });
    assert.deepEqual(config.ledger, { path: '/etc/sftppush/var/ledger.db', historyDays: 365 });
    assert.deepEqual(config.reconcile, { schedule: '*/5 * * * *', settleSeconds: 30 });
    assert.deepEqual(config.upload, {
      concurrency: 8,
      after: { kind: 'keep' },
      multipartThresholdBytes: 16 * 1024 * 1024,
      partSizeBytes: 8 * 1024 * 1024,
      maxBackoffSeconds: 900,
      requestTimeoutMs: 60_000,
      stopGraceMs: 30_000,
    });
    assert.deepEqual(config.targets, [
      {
        path: '/etc/sftppush/incoming',
        ignore: [...DEFAULT_IGNORE],
        bucket: 'archive-bucket',
        prefix: '',
        quietMs: 0,
        extract: true,
        keepArchive: false,
        after: { kind: 'keep' },
        afterKey: 'upload.after',
      },
    ]);
    const GIB = 1024 * 1024 * 1024;
    assert.deepEqual(config.archive, { maxTotalBytes: 10 * GIB, maxMembers: 100_000, maxRatio: 200, maxMemberBytes: 10 * GIB });
  });

  void test('each target inherits the s3 bucket and prefix unless it sets its own', () => {
    const config = validateConfig(
      minimal({
        s3: { bucket: 'main-bucket', prefix: 'base/' },
        targets: [{ path: '/srv/a' }, { path: '/srv/b', bucket: 'other-bucket' }, { path: '/srv/c', prefix: 'c-only/' }],
      }),
      FILE,
    );
    assert.deepEqual(
      config.targets.map((t) => [t.path, t.bucket, t.prefix]),
      [
        ['/srv/a', 'main-bucket', 'base/'],
        ['/srv/b', 'other-bucket', 'base/'],
        // A target's own prefix replaces the s3 prefix; it is not nested under it.
        ['/srv/c', 'main-bucket', 'c-only/'],
      ],
    );
  });

  void test('ledger.history_days: 0 keeps every transition; a negative or fractional one is refused', () => {
    assert.equal(validateConfig(minimal({ ledger: { history_days: 0 } }), FILE).ledger.historyDays, 0);
    assert.equal(validateConfig(minimal({ ledger: { history_days: 30 } }), FILE).ledger.historyDays, 30);
    assertConfigError(() => validateConfig(minimal({ ledger: { history_days: -1 } }), FILE), FILE, /ledger\.history_days/);
    assertConfigError(() => validateConfig(minimal({ ledger: { history_days: 1.5 } }), FILE), FILE, /ledger\.history_days/);
  });

  void test('the configuration is frozen all the way down', () => {
    const config: Config = validateConfig(minimal(), FILE);
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.s3) && Object.isFrozen(config.targets));
    assert.ok(Object.isFrozen(config.targets[0]) && Object.isFrozen(config.targets[0]?.ignore));
    assert.throws(() => {
      (config.s3 as { bucket: string }).bucket = 'changed';
    }, TypeError);
    assert.equal(config.s3.bucket, 'archive-bucket');
  });
});

void describe('mistakes are refused, naming the key and the file', () => {
  void test('an unknown key is named with its table', () => {
    assertConfigError(() => validateConfig(minimal({ s3: { bucket: 'abc', bucktet: 'abc' } }), FILE), FILE, /unknown key s3\.bucktet/);
    assertConfigError(() => validateConfig(minimal({ upload: { concurency: 4 } }), FILE), FILE, /unknown key upload\.concurency/);
    assertConfigError(() => validateConfig(minimal({ targets: [{ path: 'a', prefx: 'p/' }] }), FILE), FILE, /targets\[0\]\.prefx/);
    assertConfigError(() => validateConfig(minimal({ colour: 'blue' }), FILE), FILE, /unknown key colour/);
  });

  // When the typo replaces a required key, the misspelt key must be named, not only the missing one.
  void test('a misspelt required key is named even though it leaves the real key missing', () => {
    assertConfigError(() => validateConfig({ s3: { bucktet: 'abc' }, targets: [{ path: 'a' }] }, FILE), FILE, /s3\.bucktet/);
  });

  // zod 4 leaves `issue.input` out unless asked (reportInput): without it every wrong type reads as missing.
  void test('a value of the wrong type is reported as a wrong type, not as missing', () => {
    const message = assertConfigError(
      () => validateConfig(minimal({ s3: { bucket: 'abc', force_path_style: 'yes' } }), FILE),
      FILE,
      /s3\.force_path_style/,
    );
    assert.doesNotMatch(message, /missing/);
    const concurrency = assertConfigError(() => validateConfig(minimal({ upload: { concurrency: '8' } }), FILE), FILE, /upload\.concurrency/);
    assert.doesNotMatch(concurrency, /missing/);
  });

  void test('a value out of range names the key', () => {
    assertConfigError(() => validateConfig(minimal({ upload: { concurrency: 0 } }), FILE), FILE, /upload\.concurrency/);
    assertConfigError(() => validateConfig(minimal({ s3: { bucket: 'abc', prefix: '/abs/' } }), FILE), FILE, /s3\.prefix/);
    assertConfigError(() => validateConfig(minimal({ s3: { bucket: 'abc', endpoint: 'not a url' } }), FILE), FILE, /s3\.endpoint/);
    assertConfigError(() => validateConfig(minimal({ upload: { part_size_mb: 32 } }), FILE), FILE, /upload\.part_size_mb/);
  });

  void test('a missing bucket, s3 table or target list is named', () => {
    assertConfigError(() => validateConfig({ s3: {}, targets: [{ path: 'a' }] }, FILE), FILE, /s3\.bucket: required key is missing/);
    assertConfigError(() => validateConfig({ targets: [{ path: 'a' }] }, FILE), FILE, /\bs3\b.*missing/);
    assertConfigError(() => validateConfig({ s3: { bucket: 'abc' } }, FILE), FILE, /targets/);
    assertConfigError(() => validateConfig({ s3: { bucket: 'abc' }, targets: [] }, FILE), FILE, /at least one \[\[targets\]\]/);
  });

  void test('s3.conditional_writes is "auto", true or false; anything else is named', () => {
    for (const value of ['auto', true, false] as const) {
      assert.equal(validateConfig({ s3: { bucket: 'abc', conditional_writes: value }, targets: [{ path: 'a' }] }, FILE).s3.conditionalWrites, value);
    }
    assertConfigError(
      () => validateConfig({ s3: { bucket: 'abc', conditional_writes: 'yes' }, targets: [{ path: 'a' }] }, FILE),
      FILE,
      /s3\.conditional_writes/,
    );
  });

  void test('reconcile --target narrows to configured targets, keeping their settings; any other directory is refused', () => {
    const config = validateConfig(
      {
        s3: { bucket: 'abc', prefix: 'all/' },
        targets: [{ path: '/srv/a', prefix: 'a/', ignore: ['*.skip'], quiet_ms: 5 }, { path: '/srv/b' }],
      },
      FILE,
    );
    const narrowed = selectTargets(config, ['/srv/a']);
    assert.deepEqual(narrowed.config.targets, [config.targets[0]]);
    assert.equal(narrowed.config.targets[0]?.prefix, 'a/');
    assert.deepEqual(narrowed.subtrees, [{ target: config.targets[0], relDir: '' }]);
    assert.equal(narrowed.partial, true, 'one target of two');
    assert.equal(selectTargets(config, ['/srv/b', '/srv/a']).partial, false, 'every target, whole');
    assertConfigError(() => selectTargets(config, ['/srv/c']), FILE, /--target \/srv\/c: not a configured target or a directory in one/, /\/srv\/b/);
    assertConfigError(() => selectTargets(config, ['/srv/ab']), FILE, /--target \/srv\/ab: not a configured target/);
  });

  void test('reconcile --target DIR inside a target scopes the pass to that subtree, keys still relative to the target', (t) => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sftppush-select-'));
    t.after(() => fs.rmSync(root, { recursive: true, force: true }));
    fs.mkdirSync(path.join(root, 'in', 'a', 'b'), { recursive: true });
    fs.mkdirSync(path.join(root, 'in', '.hidden'));
    fs.mkdirSync(path.join(root, 'other'));
    const config = validateConfig(
      { s3: { bucket: 'abc' }, targets: [{ path: path.join(root, 'in'), prefix: 'in/' }, { path: path.join(root, 'other'), prefix: 'other/' }] },
      FILE,
    );
    const [inTarget] = config.targets;

    const sub = selectTargets(config, [path.join(root, 'in', 'a', 'b')]);
    assert.deepEqual(sub.config.targets, [inTarget]);
    assert.deepEqual(sub.subtrees, [{ target: inTarget, relDir: 'a/b' }]);
    assert.equal(sub.partial, true);
    // A relative DIR is taken from the working directory; a subtree inside another one named is walked once.
    const cwd = process.cwd();
    try {
      process.chdir(path.join(root, 'in'));
      assert.deepEqual(selectTargets(config, ['a/b', 'a']).subtrees, [{ target: inTarget, relDir: 'a' }]);
      assert.deepEqual(selectTargets(config, ['a', '.']).subtrees, [{ target: inTarget, relDir: '' }]);
    } finally {
      process.chdir(cwd);
    }
    assertConfigError(() => selectTargets(config, [path.join(root, 'in', 'nope')]), FILE, /--target .*in\/nope: not an existing directory/);
    assertConfigError(() => selectTargets(config, [path.join(root, 'in', '.hidden')]), FILE, /--target .*\.hidden: ignored by the target's ignore globs/);
    assertConfigError(() => selectTargets(config, [root]), FILE, /--target .*: not a configured target or a directory in one/);
  });

  void test('after is per target, upload.after the default; move:DIR resolves against the config directory', () => {
    const config = validateConfig(
      minimal({
        upload: { after: 'delete' },
        targets: [{ path: '/srv/a', prefix: 'a/' }, { path: '/srv/b', prefix: 'b/', after: 'keep' }, { path: '/srv/c', prefix: 'c/', after: 'move:done' }],
      }),
      FILE,
    );
    assert.deepEqual(config.upload.after, { kind: 'delete' });
    assert.deepEqual(
      config.targets.map((t) => [t.after, t.afterKey]),
      [
        [{ kind: 'delete' }, 'upload.after'],
        [{ kind: 'keep' }, 'targets[1].after'],
        [{ kind: 'move', dir: '/etc/sftppush/done' }, 'targets[2].after'],
      ],
    );
  });

  void test('a bad after, or a move:DIR inside a watched target, is refused naming the key', () => {
    assertConfigError(() => validateConfig(minimal({ upload: { after: 'remove' } }), FILE), FILE, /upload\.after: expected "keep", "delete" or "move:DIR", got "remove"/);
    assertConfigError(() => validateConfig(minimal({ targets: [{ path: '/srv/a', after: 'move:' }] }), FILE), FILE, /targets\[0\]\.after: expected/);
    assertConfigError(
      () => validateConfig(minimal({ targets: [{ path: '/srv/a', prefix: 'a/', after: 'move:/srv/b/done' }, { path: '/srv/b', prefix: 'b/' }] }), FILE),
      FILE,
      /targets\[0\]\.after: move:\/srv\/b\/done is inside targets\[1\]\.path \/srv\/b/,
    );
    assertConfigError(
      () => validateConfig(minimal({ upload: { after: 'move:/srv/a' }, targets: [{ path: '/srv/a' }] }), FILE),
      FILE,
      /upload\.after: move:\/srv\/a is inside targets\[0\]\.path/,
    );
  });

  void test('a move:DIR on another filesystem than its target is refused at start, naming the key, and never created; on the same one DIR is created', (t) => {
    const root = fs.mkdtempSync(path.join(scratch, 'after-'));
    const target = path.join(root, 'in');
    fs.mkdirSync(target);
    const same = validateConfig(minimal({ targets: [{ path: target, after: `move:${path.join(root, 'done', 'x')}` }] }), FILE);
    prepareAfterDirectories(same);
    assert.ok(fs.statSync(path.join(root, 'done', 'x')).isDirectory(), 'DIR created');
    // /dev/shm is a tmpfs on Linux: another filesystem than the scratch directory's, where the machine has both.
    if (!fs.existsSync('/dev/shm') || fs.statSync('/dev/shm').dev === fs.statSync(root).dev) {
      t.skip('no second filesystem to move to');
      return;
    }
    const elsewhere = fs.mkdtempSync('/dev/shm/sftppush-after-');
    try {
      const config = validateConfig(minimal({ targets: [{ path: target, after: `move:${elsewhere}` }] }), FILE);
      assertConfigError(() => prepareAfterDirectories(config), FILE, /targets\[0\]\.after: .* is on another filesystem than /);
      // Refused before anything is made: a DIR that does not exist yet is not created on the other filesystem.
      const missing = path.join(elsewhere, 'done', 'x');
      const refused = validateConfig(minimal({ targets: [{ path: target, after: `move:${missing}` }] }), FILE);
      assertConfigError(() => prepareAfterDirectories(refused), FILE, /targets\[0\]\.after: .*\/done\/x is on another filesystem than /);
      assert.deepEqual(fs.readdirSync(elsewhere), [], 'nothing created on the other filesystem');
      // Nor another target's DIR: a refused configuration leaves nothing behind.
      const second = path.join(root, 'in2');
      fs.mkdirSync(second);
      const both = validateConfig(
        minimal({ targets: [{ path: second, prefix: 'b/', after: `move:${path.join(root, 'done2')}` }, { path: target, prefix: 'a/', after: `move:${missing}` }] }),
        FILE,
      );
      assertConfigError(() => prepareAfterDirectories(both), FILE, /targets\[1\]\.after: .* is on another filesystem than /);
      assert.equal(fs.existsSync(path.join(root, 'done2')), false, 'the first target\'s DIR is not made either');
    } finally {
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  void test('credentials in config.toml are refused by key, pointing at the default chain, never echoing the value', () => {
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    for (const [extra, key] of [
      [{ s3: { bucket: 'abc', access_key_id: 'AKIAIOSFODNN7EXAMPLE' } }, 's3.access_key_id'],
      [{ s3: { bucket: 'abc', secret_access_key: secret } }, 's3.secret_access_key'],
      [{ s3: { bucket: 'abc', aws_session_token: secret } }, 's3.aws_session_token'],
      [{ credentials: { secret } }, 'credentials'],
    ] as const) {
      const message = assertConfigError(() => validateConfig(minimal(extra), FILE), FILE, new RegExp(`${key.replace('.', '\\.')}: credentials never live`), /default chain/);
      assert.ok(!message.includes(secret) && !message.includes('AKIA'), message);
    }
  });

  void test('server-side encryption and tags are read; mistakes name their key', () => {
    const kms = validateConfig(minimal({ s3: { bucket: 'abc', sse: 'aws:kms', kms_key_id: 'alias/archive', tags: { team: 'data', env: 'prod' } } }), FILE);
    assert.deepEqual(kms.s3.objectOptions, { storageClass: undefined, sse: 'aws:kms', kmsKeyId: 'alias/archive', tags: { team: 'data', env: 'prod' } });
    assertConfigError(() => validateConfig(minimal({ s3: { bucket: 'abc', sse: 'aes256' } }), FILE), FILE, /s3\.sse: must be "AES256" or "aws:kms"/);
    assertConfigError(() => validateConfig(minimal({ s3: { bucket: 'abc', sse: 'AES256', kms_key_id: 'k' } }), FILE), FILE, /s3\.kms_key_id .*not "aws:kms"/);
    const eleven = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`t${i}`, 'v']));
    assertConfigError(() => validateConfig(minimal({ s3: { bucket: 'abc', tags: eleven } }), FILE), FILE, /s3\.tags: S3 allows at most 10/);
    assertConfigError(() => validateConfig(minimal({ s3: { bucket: 'abc', tags: { team: 5 } } }), FILE), FILE, /s3\.tags\.team/);
    assertConfigError(() => validateConfig(minimal({ s3: { bucket: 'abc', tags: { team: 'a&b' } } }), FILE), FILE, /s3\.tags\.team: S3 tags allow only/);
  });

  void test('[metrics] is off when absent; listen is HOST:PORT, and a bad value names the key and the file', () => {
    assert.equal(validateConfig(minimal({}), FILE).metrics, undefined);
    const on = validateConfig(minimal({ metrics: { listen: '127.0.0.1:9464' } }), FILE).metrics;
    assert.deepEqual(on, { listen: { host: '127.0.0.1', port: 9464 }, s3StaleSeconds: 60 });
    assert.deepEqual(validateConfig(minimal({ metrics: { listen: '[::1]:1', s3_stale_seconds: 5 } }), FILE).metrics, {
      listen: { host: '::1', port: 1 },
      s3StaleSeconds: 5,
    });
    assert.deepEqual(validateConfig(minimal({ metrics: { listen: 'localhost:9464' } }), FILE).metrics?.listen, { host: 'localhost', port: 9464 });
    for (const listen of ['9464', ':9464', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', '::1:9464', '[127.0.0.1]:9464', 'a b:1', 'http://x:1']) {
      assertConfigError(() => validateConfig(minimal({ metrics: { listen } }), FILE), FILE, /metrics\.listen: /);
    }
    assertConfigError(() => validateConfig(minimal({ metrics: { listen: 9464 } }), FILE), FILE, /metrics\.listen: /);
    assertConfigError(() => validateConfig(minimal({ metrics: {} }), FILE), FILE, /metrics\.listen: required key is missing/);
    assertConfigError(() => validateConfig(minimal({ metrics: { listen: '127.0.0.1:1', port: 2 } }), FILE), FILE, /unknown key metrics\.port/);
    assertConfigError(
      () => validateConfig(minimal({ metrics: { listen: '127.0.0.1:1', s3_stale_seconds: 0 } }), FILE),
      FILE,
      /metrics\.s3_stale_seconds/,
    );
  });

  void test('[archive] limits and per-target extract/keep_archive are read; a bad value names its key', () => {
    const config = validateConfig(
      minimal({
        archive: { max_members: 10, max_ratio: 50.5, max_total_bytes: 1000 },
        targets: [{ path: '/srv/a', prefix: 'a/', extract: false }, { path: '/srv/b', prefix: 'b/', keep_archive: true }],
      }),
      FILE,
    );
    assert.deepEqual(config.archive, { maxTotalBytes: 1000, maxMembers: 10, maxRatio: 50.5, maxMemberBytes: 1000 });
    assert.deepEqual(config.targets.map((t) => [t.extract, t.keepArchive]), [[false, false], [true, true]]);
    assertConfigError(() => validateConfig(minimal({ archive: { max_members: 0 } }), FILE), FILE, /archive\.max_members/);
    assertConfigError(() => validateConfig(minimal({ archive: { max_ratios: 5 } }), FILE), FILE, /max_ratios/);
    assertConfigError(() => validateConfig(minimal({ targets: [{ path: '/srv/a', extract: 'yes' }] }), FILE), FILE, /targets\[0\]\.extract/);
  });

  void test('an invalid cron expression in reconcile.schedule is refused naming the key', () => {
    for (const schedule of ['every five minutes', '61 * * * *', '* * *']) {
      assertConfigError(() => validateConfig(minimal({ reconcile: { schedule } }), FILE), FILE, /reconcile\.schedule: not a valid cron expression/);
    }
  });

  void test('invalid TOML names the file and the line', () => {
    const file = writeConfig('[s3]\nbucket = "abc"\nprefix = \n\n[[targets]]\npath = "a"\n');
    assertConfigError(() => loadConfig(file), file, /invalid TOML at line 3\b/);
  });

  void test('a config file that cannot be read names the file and the reason', () => {
    const file = path.join(scratch, 'does-not-exist.toml');
    assertConfigError(() => loadConfig(file), file, /cannot read config file \(ENOENT\)/);
  });
});

void describe('loadConfig with command-line overrides', () => {
  const text = '[s3]\nbucket = "file-bucket"\nprefix = "file/"\n[ledger]\npath = "db/ledger.db"\n[[targets]]\npath = "from-file"\n';

  void test('without overrides, relative paths resolve against the config file directory, not the cwd', () => {
    const file = writeConfig(text);
    const config = loadConfig(file);
    assert.equal(config.ledger.path, path.join(path.dirname(file), 'db/ledger.db'));
    assert.deepEqual(config.targets.map((t) => t.path), [path.join(path.dirname(file), 'from-file')]);
  });

  void test('flags win over the file; flag paths resolve against the cwd', () => {
    const file = writeConfig(text);
    const config = loadConfig(file, {
      bucket: 'flag-bucket',
      prefix: 'flag/',
      endpoint: 'http://127.0.0.1:9000',
      ledger: 'flag.db',
      targets: ['flag-a'],
      concurrency: 3,
    });
    assert.equal(config.s3.bucket, 'flag-bucket');
    assert.equal(config.s3.prefix, 'flag/');
    assert.equal(config.s3.endpoint, 'http://127.0.0.1:9000');
    assert.equal(config.ledger.path, path.resolve('flag.db'));
    assert.equal(config.upload.concurrency, 3);
    assert.deepEqual(
      config.targets.map((t) => [t.path, t.bucket, t.prefix]),
      [[path.resolve('flag-a'), 'flag-bucket', 'flag/']],
    );
    // Two --target directories would share one prefix: refused, naming both directories.
    assertConfigError(() => loadConfig(file, { targets: ['flag-a', '/abs/flag-b'] }), file, /\/abs\/flag-b.*flag-a.*share bucket/);
  });

  void test('no config file where one was looked for (no --config given): the message says so first', () => {
    const nowhere = path.join(os.tmpdir(), `sftppush-no-config-${process.pid}`, 'config.toml');
    assertConfigError(() => loadConfig(nowhere, {}, { optional: true }), `no config file found at ${nowhere}`, /give --config FILE/);
    // Flags alone can configure a run: then the missing file is no error.
    const config = loadConfig(nowhere, { bucket: 'flag-bucket', targets: ['/srv/in'] }, { optional: true });
    assert.equal(config.targetsFromFlags, true);
  });

  void test('an empty --target list keeps the file targets', () => {
    const file = writeConfig(text);
    assert.deepEqual(loadConfig(file, { targets: [] }).targets.map((t) => path.basename(t.path)), ['from-file']);
  });

  void test('an optional config file that does not exist is fine when flags give bucket and target', () => {
    const config = loadConfig(path.join(scratch, 'absent.toml'), { bucket: 'flag-bucket', targets: ['/data/in'] }, { optional: true });
    assert.equal(config.s3.bucket, 'flag-bucket');
    assert.deepEqual(config.targets.map((t) => t.path), ['/data/in']);
  });

  void test('an override does not hide a type error in the file', () => {
    const file = writeConfig('s3 = "not a table"\n[[targets]]\npath = "a"\n');
    assertConfigError(() => loadConfig(file, { bucket: 'flag-bucket' }), file, /\bs3\b/);
  });

  void test('two targets that are the same directory, or one inside the other, are refused naming both', () => {
    for (const [outer, inner] of [['data', 'data'], ['data', 'data/inbox']]) {
      assertConfigError(
        () => validateConfig(minimal({ targets: [{ path: outer, prefix: '1/' }, { path: inner, prefix: '2/' }] }), FILE),
        FILE,
        /targets\[1\]\.path: .* overlaps targets\[0\]\.path/,
      );
    }
    assert.doesNotThrow(() => validateConfig(minimal({ targets: [{ path: 'data', prefix: 'd1/' }, { path: 'data-2', prefix: 'd2/' }] }), FILE));
  });

  void test('two targets whose prefixes in one bucket could give two files one key are refused naming both', () => {
    const cases: [Record<string, unknown>[], RegExp][] = [
      [[{ path: '/a' }, { path: '/b' }], /targets\[1\] \(\/b\) prefix "" and targets\[0\] \(\/a\) prefix "" share bucket archive-bucket/],
      [[{ path: '/a', prefix: 'in/' }, { path: '/b', prefix: 'in/b/' }], /targets\[1\] \(\/b\) prefix "in\/b\/" and targets\[0\] \(\/a\) prefix "in\/"/],
      [[{ path: '/a', prefix: 'x' }, { path: '/b', prefix: 'xy/' }], /share bucket/],
    ];
    for (const [targets, pattern] of cases) assertConfigError(() => validateConfig(minimal({ targets }), FILE), FILE, pattern);
    // Other buckets, or prefixes neither of which starts the other, cannot collide.
    assert.doesNotThrow(() => validateConfig(minimal({ targets: [{ path: '/a' }, { path: '/b', bucket: 'other-bucket' }] }), FILE));
    assert.doesNotThrow(() => validateConfig(minimal({ targets: [{ path: '/a', prefix: 'a/' }, { path: '/b', prefix: 'b/' }] }), FILE));
  });
});
