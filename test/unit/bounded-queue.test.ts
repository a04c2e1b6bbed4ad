import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BoundedQueue } from '../../src/watch/bounded-queue.ts';

/** A queue whose tasks end when the test says so, with a log of what started and settled. */
function scripted(order: 'fifo' | 'lifo', limit: number) {
  const log: string[] = [];
  const finish = new Map<string, () => void>();
  const queue = new BoundedQueue<string>({
    limit,
    order,
    run: (item) => {
      log.push(`start ${item}`);
      return new Promise<void>((resolve) => finish.set(item, resolve));
    },
    settled: (item) => log.push(`settled ${item}`),
  });
  /** Ends a running task and lets its settlement run. */
  const end = async (item: string) => {
    finish.get(item)?.();
    await new Promise((r) => setImmediate(r));
  };
  return { queue, log, end };
}

test('BoundedQueue: at most `limit` run; first in first out; a settled task is told before the next starts', async () => {
  const { queue, log, end } = scripted('fifo', 2);
  for (const item of ['a', 'b', 'c', 'd']) queue.push(item);
  assert.deepEqual(log, ['start a', 'start b']);
  assert.equal(queue.idle, false);
  await end('b');
  assert.deepEqual(log, ['start a', 'start b', 'settled b', 'start c']);
  await end('a');
  await end('c');
  await end('d');
  assert.deepEqual(log.slice(4), ['settled a', 'start d', 'settled c', 'settled d']);
  assert.equal(queue.idle, true);
});

test('BoundedQueue: last in first out walks depth first', async () => {
  const { queue, log, end } = scripted('lifo', 1);
  for (const item of ['a', 'b', 'c']) queue.push(item);
  await end('a');
  await end('c');
  await end('b');
  assert.deepEqual(log, ['start a', 'settled a', 'start c', 'settled c', 'start b', 'settled b']);
});

test('BoundedQueue: dropWaiting returns what had not started, and what runs goes on', async () => {
  const { queue, log, end } = scripted('fifo', 1);
  for (const item of ['a', 'b', 'c']) queue.push(item);
  assert.deepEqual(queue.dropWaiting(), ['b', 'c']);
  assert.equal(queue.idle, false);
  await end('a');
  assert.deepEqual(log, ['start a', 'settled a']);
  assert.equal(queue.idle, true);
  queue.push('d');
  assert.deepEqual(log.at(-1), 'start d');
});

test('BoundedQueue: a task pushed again from `settled` waits behind those already waiting', async () => {
  const log: string[] = [];
  const finish = new Map<string, () => void>();
  let again = true;
  const queue: BoundedQueue<string> = new BoundedQueue<string>({
    limit: 1,
    order: 'fifo',
    run: (item) => {
      log.push(`start ${item}`);
      return new Promise<void>((resolve) => finish.set(item, resolve));
    },
    settled: (item) => {
      if (item === 'a' && again) {
        again = false;
        queue.push('a');
      }
    },
  });
  queue.push('a');
  queue.push('b');
  finish.get('a')?.();
  await new Promise((r) => setImmediate(r));
  finish.get('b')?.();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, ['start a', 'start b', 'start a']);
});
