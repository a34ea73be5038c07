// Smoke test with @polkadot/api: a balance transfer is finalized on the dev node, its
// event has named fields, and the runtime's metadata carries docs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Keyring } from '@polkadot/keyring';
import { connect, sendFinalized, theEvent } from './lib.mjs';

const api = await connect();
after(() => api.disconnect());

test('runtime is fastdata and documents its calls', () => {
  assert.equal(api.runtimeVersion.specName.toString(), 'fastdata');
  const meta = api.tx.balances.transferKeepAlive.meta;
  assert.ok(meta.docs.length > 0, 'calls carry docs for polkadot.js apps');
});

test('balance transfer is finalized with a named-field event', async () => {
  const keyring = new Keyring({ type: 'sr25519' });
  const alice = keyring.addFromUri('//Alice');
  const dest = keyring.addFromUri(`//js-smoke-${Date.now()}`);
  const amount = 2_000_000_000_000n;

  const before = (await api.query.system.account(dest.address)).data.free.toBigInt();
  assert.equal(before, 0n);

  const { events } = await sendFinalized(api, api.tx.balances.transferKeepAlive(dest.address, amount), alice);
  const transfer = theEvent(api, events, 'balances', 'Transfer');
  const { from, to, amount: got } = transfer.data;
  assert.equal(from.toString(), alice.address);
  assert.equal(to.toString(), dest.address);
  assert.equal(got.toBigInt(), amount);
  assert.ok(events.some(({ event }) => api.events.system.ExtrinsicSuccess.is(event)));

  const after = (await api.query.system.account(dest.address)).data.free.toBigInt();
  assert.equal(after, amount);
});
