import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_OBJECT_BYTES, MAX_PART_BYTES, MAX_PARTS, MIN_PART_BYTES, partSizeFor, partsInFlight } from '../../src/s3/multipart.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

void test('the configured part size holds while it takes at most 10,000 parts', () => {
  assert.equal(partSizeFor(300 * 1000 * 1000, 8 * MIB), 8 * MIB);
  assert.equal(partSizeFor(MAX_PARTS * 8 * MIB, 8 * MIB), 8 * MIB);
});

void test('a file that would take more than 10,000 parts gets larger parts, in whole MiB', () => {
  for (const sizeBytes of [MAX_PARTS * 8 * MIB + 1, 100 * GIB, 1024 * GIB, MAX_OBJECT_BYTES]) {
    const part = partSizeFor(sizeBytes, 8 * MIB);
    assert.ok(Math.ceil(sizeBytes / part) <= MAX_PARTS, `${sizeBytes} bytes in parts of ${part}: ${Math.ceil(sizeBytes / part)} parts`);
    assert.equal(part % MIB, 0);
    assert.ok(part <= MAX_PART_BYTES);
  }
  assert.equal(partSizeFor(MAX_PARTS * 8 * MIB + 1, 8 * MIB), 9 * MIB);
  assert.equal(partSizeFor(MAX_OBJECT_BYTES, 8 * MIB), 525 * MIB);
});

void test("never below S3's 5 MiB minimum part", () => {
  assert.equal(partSizeFor(10, 1), MIN_PART_BYTES);
  assert.equal(partSizeFor(0, 0), MIN_PART_BYTES);
});

void test('parts in flight: 4 up to 16 MiB parts, then fewer, never none', () => {
  assert.equal(partsInFlight(8 * MIB), 4);
  assert.equal(partsInFlight(16 * MIB), 4);
  assert.equal(partsInFlight(20 * MIB), 3);
  assert.equal(partsInFlight(64 * MIB), 1);
  assert.equal(partsInFlight(525 * MIB), 1);
});
