// Smoke test with @polkadot/api: a balance transfer is finalized on the dev node, its
// event has named fields, and the runtime's metadata carries docs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';

const url = process.env.FASTDATA_WS ?? 'ws://127.0.0.1:9944';
const api = await ApiPromise.create({ provider: new WsProvider(url), noInitWarn: true });
after(() => api.disconnect());

// Resolves with the events of `tx` once it is finalized (dev nodes never report InBlock).
function sendFinalized(tx, signer) {
  return new Promise((resolve, reject) => {
    tx.signAndSend(signer, ({ status, events, dispatchError }) => {
      if (dispatchError) {
        reject(new Error(dispatchError.isModule
          ? JSON.stringify(api.registry.findMetaError(dispatchError.asModule))
          : dispatchError.toString()));
      } else if (status.isFinalized) {
        resolve(events);
      } else if (status.isDropped || status.isInvalid || status.isUsurped) {
        reject(new Error(`transaction ${status.type}`));
      }
    }).catch(reject);
  });
}

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

  const events = await sendFinalized(api.tx.balances.transferKeepAlive(dest.address, amount), alice);
  const transfer = events.find(({ event }) => api.events.balances.Transfer.is(event));
  assert.ok(transfer, 'Balances.Transfer emitted');
  const { from, to, amount: got } = transfer.event.data;
  assert.equal(from.toString(), alice.address);
  assert.equal(to.toString(), dest.address);
  assert.equal(got.toBigInt(), amount);
  assert.ok(events.some(({ event }) => api.events.system.ExtrinsicSuccess.is(event)));

  const after = (await api.query.system.account(dest.address)).data.free.toBigInt();
  assert.equal(after, amount);
});
