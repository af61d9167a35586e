// How an S3 request attempt's end is classified for metrics (errors by kind) and /healthz (did S3 answer?).
import { S3ServiceException } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { NotS3AnswerError } from '../../src/errors.js';
import { classifyAttempt } from '../../src/s3/request-outcome.js';

function s3Error(name: string, status: number): S3ServiceException {
  return new S3ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message: name });
}

function systemError(code: string, name = 'Error'): Error {
  return Object.assign(new Error(code), { code, name });
}

void test('every way an attempt ends: answered or not, and the kind of error worth counting', () => {
  const cases: [unknown, boolean, string | undefined][] = [
    [undefined, true, undefined],
    [s3Error('NotFound', 404), true, undefined], // a HEAD of a missing key: an answer we asked for
    [s3Error('PreconditionFailed', 412), true, undefined], // the write gate's 412: not an error
    [s3Error('NoSuchBucket', 404), true, 'no-such-bucket'],
    [s3Error('AccessDenied', 403), true, 'denied'],
    [s3Error('InvalidArgument', 400), true, 'client'],
    [s3Error('ConditionalRequestConflict', 409), true, 'client'],
    [s3Error('RequestTimeout', 408), true, 'timeout'],
    [s3Error('TooManyRequests', 429), true, 'throttled'],
    [s3Error('SlowDown', 503), false, 'throttled'],
    [s3Error('InternalError', 500), false, 'server'],
    [s3Error('BadGateway', 502), false, 'server'],
    [s3Error('Unknown', 200), false, 'invalid-response'], // a page the SDK could not read as S3's
    [new NotS3AnswerError('http://proxy:8080', 200, 'text/html'), false, 'invalid-response'], // a proxy's page, any status
    [systemError('ECONNREFUSED'), false, 'network'],
    [systemError('ECONNRESET'), false, 'network'],
    [systemError('ETIMEDOUT'), false, 'timeout'],
    [Object.assign(new Error('socket timed out'), { name: 'TimeoutError' }), false, 'timeout'],
    [Object.assign(new Error('aborted'), { name: 'AbortError' }), false, 'timeout'],
  ];
  for (const [error, answered, kind] of cases) {
    const label = error === undefined ? 'success' : `${(error as Error).name} ${String((error as { code?: string }).code ?? '')}`;
    assert.deepEqual(classifyAttempt('HeadObjectCommand', error), { operation: 'HeadObjectCommand', answered, error: kind }, label);
  }
});

void test('a 404 is an answer only to an object read, or when S3 names a missing key, version or upload', () => {
  const cases: [string, unknown, string | undefined][] = [
    ['GetObjectCommand', s3Error('NoSuchKey', 404), undefined],
    ['PutObjectCommand', s3Error('NoSuchKey', 404), undefined], // the conditional-write probe's If-Match on a missing key
    ['AbortMultipartUploadCommand', s3Error('NoSuchUpload', 404), undefined], // already completed or aborted
    ['DeleteObjectCommand', s3Error('NoSuchVersion', 404), undefined],
    ['PutObjectCommand', s3Error('NotFound', 404), 'client'], // a page the SDK could not read, a misrouted gateway
    ['PutObjectCommand', s3Error('Unknown', 404), 'client'],
    ['ListMultipartUploadsCommand', s3Error('NotFound', 404), 'client'],
    ['HeadBucketCommand', s3Error('NotFound', 404), 'no-such-bucket'], // a HEAD has no body to name it
  ];
  for (const [operation, error, kind] of cases) {
    assert.deepEqual(classifyAttempt(operation, error), { operation, answered: true, error: kind }, `${operation} ${(error as Error).name}`);
  }
});
