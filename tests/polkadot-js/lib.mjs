// Shared helpers of the @polkadot/api tests: connecting to the node, sending extrinsics
// until finalized, decoding dispatch errors by name, and the X25519 / HPKE sealing that a
// seller uses to hand epoch keys to a buyer (primitives/src/sealed.rs), on node:crypto.
import {
  createCipheriv, createDecipheriv, createHmac, createPrivateKey, createPublicKey,
  diffieHellman, generateKeyPairSync,
} from 'node:crypto';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { u8aConcat, u8aToHex, u8aToU8a, stringToU8a } from '@polkadot/util';

export const url = process.env.FASTDATA_WS ?? 'ws://127.0.0.1:9944';

export function connect() {
  return ApiPromise.create({ provider: new WsProvider(url), noInitWarn: true });
}

// The module error of a failed dispatch as `Pallet.Variant`, read from the metadata.
export function errorName(api, dispatchError) {
  if (!dispatchError.isModule) return dispatchError.toString();
  const { section, name } = api.registry.findMetaError(dispatchError.asModule);
  return `${section}.${name}`;
}

// An extrinsic that failed in its block. `error` is `Pallet.Variant`.
export class DispatchFailed extends Error {
  constructor(error, blockHash) {
    super(`dispatch failed: ${error}`);
    this.error = error;
    this.blockHash = blockHash;
  }
}

// Pool errors worth a retry: another signer of the same account (e.g. //Alice in a test file
// running in parallel) took the nonce between our nonce query and our submission.
const NONCE_RACE = /1014|Priority is too low|1010: Invalid Transaction: Transaction is outdated/;

// Sends `tx` signed by `signer` and resolves once its block is finalized (dev nodes never
// report InBlock) with `{ events, blockHash }`; rejects with `DispatchFailed` if it failed.
export async function sendFinalized(api, tx, signer) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await sendOnce(api, tx, signer);
    } catch (e) {
      if (attempt >= 4 || e instanceof DispatchFailed || !NONCE_RACE.test(String(e?.message ?? e))) {
        throw e;
      }
      await new Promise((r) => setTimeout(r, 500 + Math.random() * 1000));
    }
  }
}

function sendOnce(api, tx, signer) {
  return new Promise((resolve, reject) => {
    let unsub = null;
    let finished = false;
    const finish = () => { finished = true; if (unsub) unsub(); };
    tx.signAndSend(signer, ({ status, events, dispatchError }) => {
      if (status.isFinalized) {
        finish();
        const blockHash = status.asFinalized.toHex();
        if (dispatchError) reject(new DispatchFailed(errorName(api, dispatchError), blockHash));
        else resolve({ events, blockHash });
      } else if (status.isDropped || status.isInvalid || status.isUsurped) {
        finish();
        reject(new Error(`transaction ${status.type}`));
      }
    }).then((u) => { unsub = u; if (finished) u(); }, reject);
  });
}

// Sends `tx` expecting it to fail in its block; resolves with the error as `Pallet.Variant`.
export async function sendFailing(api, tx, signer) {
  try {
    await sendFinalized(api, tx, signer);
  } catch (e) {
    if (e instanceof DispatchFailed) return e.error;
    throw e;
  }
  throw new Error('the extrinsic succeeded but was expected to fail');
}

// The one event `pallet.Name` among `events` (fails the test if there is not exactly one).
export function theEvent(api, events, pallet, name) {
  const found = events.filter(({ event }) => api.events[pallet][name].is(event));
  if (found.length !== 1) {
    throw new Error(`expected one ${pallet}.${name} event, got ${found.length}: `
      + events.map(({ event }) => `${event.section}.${event.method}`).join(', '));
  }
  return found[0].event;
}

// Calls runtime API method `name` (e.g. 'EscrowApi_sealed_key') through `state_call` and
// decodes the answer as `returnType`. Needed where `api.call.*` decodes wrongly: @polkadot/api
// 16.5.6 hands the raw answer of an `Option<Vec<u8>>` method over as the `Bytes` inside `Some`
// (the Option tag and length prefix end up in the bytes).
export async function stateCall(api, name, params, returnType) {
  const args = u8aConcat(...params.map(([type, value]) => api.createType(type, value).toU8a()));
  const raw = await api.rpc.state.call(name, u8aToHex(args));
  return api.createType(returnType, raw.toU8a(true));
}

// Block number of a block hash.
export async function blockNumber(api, hash) {
  return (await api.rpc.chain.getHeader(hash)).number.toNumber();
}

// Resolves with the first finalized block (number and hash) for which `check(hash, number)`
// resolves truthy, or rejects after `maxBlocks` finalized blocks.
export function untilFinalized(api, check, maxBlocks) {
  return new Promise((resolve, reject) => {
    let seen = 0;
    let busy = false;
    let done = false;
    let unsub = () => {};
    api.rpc.chain.subscribeFinalizedHeads(async (header) => {
      if (busy || done) return;
      busy = true;
      try {
        const hash = header.hash.toHex();
        const number = header.number.toNumber();
        if (await check(hash, number)) {
          done = true;
          unsub();
          resolve({ hash, number });
        } else if (++seen >= maxBlocks) {
          done = true;
          unsub();
          reject(new Error(`condition not met within ${maxBlocks} finalized blocks (at #${number})`));
        }
      } catch (e) {
        done = true;
        unsub();
        reject(e);
      } finally {
        busy = false;
      }
    }).then((u) => { unsub = u; if (done) u(); }, reject);
  });
}

// The first event matching `match(event)` in the finalized blocks after block `fromHash`,
// looked at one by one (so none is skipped), within `maxBlocks` blocks.
export async function eventAfter(api, fromHash, match, maxBlocks) {
  const from = await blockNumber(api, fromHash);
  for (let n = from + 1; n <= from + maxBlocks; n++) {
    for (;;) {
      const finalized = await blockNumber(api, await api.rpc.chain.getFinalizedHead());
      if (finalized >= n) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const hash = await api.rpc.chain.getBlockHash(n);
    const found = (await api.query.system.events.at(hash)).map(({ event }) => event).find(match);
    if (found) return { event: found, number: n };
  }
  throw new Error(`no matching event within ${maxBlocks} blocks after #${from}`);
}

// ---- X25519 key agreement and HPKE (RFC 9180), as primitives/src/sealed.rs uses them ----

const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

const privateKeyObject = (secret) =>
  createPrivateKey({ key: Buffer.concat([PKCS8_X25519, Buffer.from(secret)]), format: 'der', type: 'pkcs8' });
const publicKeyObject = (pub) =>
  createPublicKey({ key: Buffer.concat([SPKI_X25519, Buffer.from(pub)]), format: 'der', type: 'spki' });

// A fresh X25519 key pair `{ secret, publicKey }` (32 bytes each), as a DID's
// key-agreement key.
export function x25519Keypair() {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return {
    secret: new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32)),
    publicKey: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)),
  };
}

export function x25519PublicKey(secret) {
  return new Uint8Array(createPublicKey(privateKeyObject(secret)).export({ format: 'der', type: 'spki' }).subarray(-32));
}

const x25519 = (secret, pub) =>
  new Uint8Array(diffieHellman({ privateKey: privateKeyObject(secret), publicKey: publicKeyObject(pub) }));

// Suite DHKEM(X25519, HKDF-SHA256) = 0x0020, HKDF-SHA256 = 0x0001, ChaCha20Poly1305 = 0x0003.
const KEM_SUITE = u8aConcat(stringToU8a('KEM'), [0x00, 0x20]);
const HPKE_SUITE = u8aConcat(stringToU8a('HPKE'), [0x00, 0x20, 0x00, 0x01, 0x00, 0x03]);
const HPKE_V1 = stringToU8a('HPKE-v1');

const hmac = (key, data) => new Uint8Array(createHmac('sha256', Buffer.from(key)).update(Buffer.from(data)).digest());
const labeledExtract = (suite, salt, label, ikm) =>
  hmac(salt, u8aConcat(HPKE_V1, suite, stringToU8a(label), ikm));
const labeledExpand = (suite, prk, label, info, length) => {
  // length <= 32: one HMAC block of HKDF-Expand.
  const labeled = u8aConcat([length >> 8, length & 0xff], HPKE_V1, suite, stringToU8a(label), info);
  return hmac(prk, u8aConcat(labeled, [1])).subarray(0, length);
};

function keySchedule(dh, enc, pkR, info) {
  const eaePrk = labeledExtract(KEM_SUITE, new Uint8Array(), 'eae_prk', dh);
  const sharedSecret = labeledExpand(KEM_SUITE, eaePrk, 'shared_secret', u8aConcat(enc, pkR), 32);
  const pskIdHash = labeledExtract(HPKE_SUITE, new Uint8Array(), 'psk_id_hash', new Uint8Array());
  const infoHash = labeledExtract(HPKE_SUITE, new Uint8Array(), 'info_hash', info);
  const context = u8aConcat([0x00], pskIdHash, infoHash); // mode_base
  const secret = labeledExtract(HPKE_SUITE, sharedSecret, 'secret', new Uint8Array());
  return {
    key: labeledExpand(HPKE_SUITE, secret, 'key', context, 32),
    nonce: labeledExpand(HPKE_SUITE, secret, 'base_nonce', context, 12),
  };
}

// HPKE single-shot seal in base mode: `{ enc, ciphertext }` (ciphertext with its 16-byte tag).
// `ephemeralSecret` is for known-answer tests only.
export function hpkeSeal(pkR, info, aad, plaintext, ephemeralSecret = x25519Keypair().secret) {
  const enc = x25519PublicKey(ephemeralSecret);
  const { key, nonce } = keySchedule(x25519(ephemeralSecret, pkR), enc, pkR, info);
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  cipher.setAAD(Buffer.from(aad), { plaintextLength: plaintext.length });
  const ciphertext = Buffer.concat([cipher.update(Buffer.from(plaintext)), cipher.final(), cipher.getAuthTag()]);
  return { enc, ciphertext: new Uint8Array(ciphertext) };
}

// HPKE single-shot open in base mode; throws if the ciphertext does not authenticate.
export function hpkeOpen(skR, enc, info, aad, ciphertext) {
  const { key, nonce } = keySchedule(x25519(skR, enc), enc, x25519PublicKey(skR), info);
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  decipher.setAAD(Buffer.from(aad), { plaintextLength: ciphertext.length - 16 });
  decipher.setAuthTag(Buffer.from(ciphertext.subarray(-16)));
  return new Uint8Array(Buffer.concat([decipher.update(Buffer.from(ciphertext.subarray(0, -16))), decipher.final()]));
}

// Sealed epoch keys, format version 1 (primitives/src/sealed.rs): `1 ‖ enc ‖ ct ‖ tag`, HPKE
// info `"fastdata/sealed-epoch-keys/v1" ‖ SCALE(purchase: u64, epoch: u32)`, aad = `[1]`.
export const SEALED_KEY_VERSION_1 = 1;
export const SEALED_KEY_LEN_V1 = 113;

export function sealingInfo(api, purchase, epoch) {
  return u8aConcat(stringToU8a('fastdata/sealed-epoch-keys/v1'),
    api.createType('(u64, u32)', [purchase, epoch]).toU8a());
}

export function sealEpochKeys(api, buyerKey, purchase, epoch, kE, kM) {
  const { enc, ciphertext } = hpkeSeal(u8aToU8a(buyerKey), sealingInfo(api, purchase, epoch),
    [SEALED_KEY_VERSION_1], u8aConcat(kE, kM));
  return u8aConcat([SEALED_KEY_VERSION_1], enc, ciphertext);
}

export function openEpochKeys(api, buyerSecret, purchase, epoch, sealed) {
  const bytes = u8aToU8a(sealed);
  if (bytes.length !== SEALED_KEY_LEN_V1 || bytes[0] !== SEALED_KEY_VERSION_1) {
    throw new Error(`not a version-1 sealed key (${bytes.length} bytes)`);
  }
  const keys = hpkeOpen(buyerSecret, bytes.subarray(1, 33), sealingInfo(api, purchase, epoch),
    [SEALED_KEY_VERSION_1], bytes.subarray(33));
  return { kE: keys.subarray(0, 32), kM: keys.subarray(32) };
}
