// The marketplace as polkadot.js users meet it: with @polkadot/api only, fresh sr25519
// accounts funded by //Alice go through the seller's and the buyer's actions on the dev
// node, and every step is checked through its events (by field name), the FAST DATA runtime
// APIs (api.call.*) and chain state:
//   1. a seller and a buyer create DIDs with X25519 key-agreement keys; //Alice, the dev KYC
//      issuer, attests a credential to each, so both are verified and get a trust score;
//   2. the seller lists a live-stream offer; a storage operator registers with the minimum
//      stake; the seller registers the offer's stream and the chain assigns an operator;
//   3. the buyer purchases one period (verified-buyer discount applied, price held); the
//      operator attests the stream's head (20 segments published in the period);
//   4. the seller seals the epoch keys to the buyer's DID key (HPKE, as the SDK does) and the
//      buyer opens them from chain and checks them against the stream's commitment;
//   5. the buyer signs a receipt for all 20 segments, bound to this chain's genesis hash; the
//      operator claims with it (a receipt beyond the attested head or signed for another chain
//      is refused); once the claim grace period is over the buyer settles the period: the
//      operator gets its price per MB, the seller the rest minus the protocol fee, nothing
//      goes back; the purchase is Settled, both sides rate each other and the seller's trust
//      score in the listing moves;
//   6. the seller closes the stream and the operator leaves, so reruns on the same chain
//      start from the same operator set;
//   7. issuers are registered by two thirds of the arbiters;
//   8. an operator that signed two contents for one segment is slashed on anyone's report.
// Every run uses new accounts, so the test passes on a fresh chain and on one it already
// ran on. It takes about 80 s: the live period (10 blocks) plus the claim grace period
// (50 blocks) must pass before settlement; no shorter honest path to a rating exists.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Keyring } from '@polkadot/keyring';
import { hexToU8a, stringToU8a, u8aConcat, u8aToHex } from '@polkadot/util';
import { blake2AsHex, decodeAddress, randomAsU8a } from '@polkadot/util-crypto';
import {
  blockNumber, connect, eventAfter, hpkeOpen, hpkeSeal, openEpochKeys, sealEpochKeys, sendFailing,
  sendFinalized, stateCall, theEvent, untilFinalized, x25519Keypair, x25519PublicKey, SEALED_KEY_LEN_V1,
} from './lib.mjs';

const UNIT = 1_000_000_000_000n;
const PRICE = 5n * UNIT; // per period of the live stream
const DISCOUNT = 100_000_000; // Perbill: 10 % off for verified buyers
const PERIOD = 10; // blocks, the runtime's MinPeriod
const SEGMENTS = 20; // published in the period, as the operator attests
const BYTES = 20n * 1024n; // received by the buyer
const OPERATOR_PRICE = 1_000_000_000n; // per MB
const QUOTA_MB = 8; // hosting quota per operator
const HOSTING_FUNDS = 3n * UNIT; // set aside by the seller to pay for hosting
const MB = 1_000_000n;
const RECEIPT_DOMAIN = 'fastdata/receipt/v2';
const TOPIC = 'plant-7/line-2/vibration';
const STREAM_NAME = 'vibration-sensor-3';

const api = await connect();
after(() => api.disconnect());

const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
const alice = keyring.addFromUri('//Alice');
const run = `${Date.now()}-${u8aToHex(randomAsU8a(4)).slice(2)}`;
const seller = keyring.addFromUri(`//fd-js-${run}-seller`);
const buyer = keyring.addFromUri(`//fd-js-${run}-buyer`);
const operator = keyring.addFromUri(`//fd-js-${run}-operator`);
const sellerKey = x25519Keypair();
const buyerKey = x25519Keypair();
// The stream's epoch-0 data keys: they never go on chain, only blake2_256(k_e ‖ k_m) does.
const kE = randomAsU8a(32);
const kM = randomAsU8a(32);
const commitment = blake2AsHex(u8aConcat(kE, kM), 256);

const c = api.consts;
const bal = (x) => x.toBigInt();
const str = (x) => x.toString();
const state = {}; // ids shared by the steps, in order

async function freeAndHolds(who) {
  const [account, holds] = await Promise.all([api.query.system.account(who), api.query.balances.holds(who)]);
  return { free: account.data.free.toBigInt(), holds: holds.map((h) => ({ id: h.id.toJSON(), amount: h.amount.toBigInt() })) };
}

before(async () => {
  // Sequential: all three come from //Alice.
  for (const [who, amount] of [[seller, 100n * UNIT], [buyer, 100n * UNIT], [operator, 200n * UNIT]]) {
    const { events } = await sendFinalized(api, api.tx.balances.transferKeepAlive(who.address, amount), alice);
    assert.equal(bal(theEvent(api, events, 'balances', 'Transfer').data.amount), amount);
  }
});

test('calls, events, errors and runtime APIs of the marketplace are documented and typed', () => {
  for (const [pallet, call] of [['did', 'createDid'], ['did', 'attestCredential'], ['offers', 'createOffer'],
    ['offers', 'registerStream'], ['operators', 'register'], ['escrow', 'purchase'],
    ['escrow', 'deliverKeys'], ['trust', 'rate']]) {
    assert.ok(api.tx[pallet][call].meta.docs.length > 0, `${pallet}.${call} has docs`);
  }
  assert.deepEqual(api.tx.escrow.purchase.meta.args.map((a) => a.name.toString()), ['offer', 'periods', 'maxPrice']);
  assert.deepEqual(api.events.escrow.Purchased.meta.fields.map((f) => f.name.toString()),
    ['purchase', 'offer', 'buyer', 'seller', 'price', 'deposit', 'periods', 'access_end', 'key_deadline']);
  assert.ok(api.errors.trust.TradeNotSettled.meta.docs.join(' ').length > 0);
  assert.match(api.call.escrowApi.purchase.meta.description.toString(), /purchase/i);
  assert.match(api.call.offersApi.offers.meta.description.toString(), /trust score/);

  // Pallet types are named structs and enums in the metadata, so apps renders field names.
  const terms = api.createType('FastdataPrimitivesApiMarketOfferTerms', {
    licence: 'Commercial', verifiedDiscount: DISCOUNT, retention: 100, replication: 2,
  });
  assert.deepEqual(terms.toHuman(), {
    licence: 'Commercial', resaleAllowed: false, verifiedOnly: false, verifiedDiscount: '10.00%',
    minTrustScore: '0', retention: '100', replication: '2',
  });
  assert.deepEqual(api.createType('FastdataPrimitivesPaymentMode', { Stream: { period: PERIOD } }).toJSON(),
    { stream: { period: PERIOD } });
  assert.deepEqual(api.createType('FastdataPrimitivesEscrowPurchaseState').defKeys,
    ['AwaitingKeys', 'Active', 'Disputed', 'Settled', 'Refunded']);
});

test('sealing of epoch keys is HPKE as RFC 9180 specifies it (A.2.1 known answer)', () => {
  // DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode, sequence 0: the
  // suite of primitives/src/sealed.rs. The same code seals keys for the buyer below.
  const skR = hexToU8a('0x8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb');
  const skE = hexToU8a('0xf4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600');
  const info = stringToU8a('Ode on a Grecian Urn');
  const aad = stringToU8a('Count-0');
  const pt = stringToU8a('Beauty is truth, truth beauty');
  assert.equal(u8aToHex(x25519PublicKey(skR)), '0x4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a');
  const { enc, ciphertext } = hpkeSeal(x25519PublicKey(skR), info, aad, pt, skE);
  assert.equal(u8aToHex(enc), '0x1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a');
  assert.equal(u8aToHex(ciphertext),
    '0x1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28');
  assert.deepEqual(hpkeOpen(skR, enc, info, aad, ciphertext), pt);
  ciphertext[0] ^= 1;
  assert.throws(() => hpkeOpen(skR, enc, info, aad, ciphertext));
});

// The registered issuer `address` (`did.issuers` is one bounded map), or undefined.
async function issuerOf(address) {
  for (const [who, info] of await api.query.did.issuers()) {
    if (str(who) === address) return info;
  }
  return undefined;
}

test('1. seller and buyer create DIDs; the dev issuer verifies them', async () => {
  const issuer = await issuerOf(alice.address);
  assert.equal(issuer.name.toUtf8(), 'FAST DATA Dev KYC', '//Alice is the dev issuer');
  assert.equal(issuer.weight.toNumber(), 1_000_000_000);
  assert.equal((await api.call.didApi.didDocument(seller.address)).isNone, true);

  const [forSeller, forBuyer] = await Promise.all([
    sendFinalized(api, api.tx.did.createDid(sellerKey.publicKey, []), seller),
    sendFinalized(api, api.tx.did.createDid(buyerKey.publicKey, []), buyer),
  ]);
  for (const [who, key, { events }] of [[seller, sellerKey, forSeller], [buyer, buyerKey, forBuyer]]) {
    const created = theEvent(api, events, 'did', 'DidCreated');
    assert.deepEqual(created.data.names, ['did', 'keyAgreement', 'services', 'deposit']);
    assert.equal(str(created.data.did), who.address);
    assert.equal(created.data.keyAgreement.toHex(), u8aToHex(key.publicKey));
    assert.equal(created.data.services.toNumber(), 0);
    // DidDeposit + ByteDeposit × encoded size of the services (an empty Vec is 1 byte).
    assert.equal(bal(created.data.deposit), bal(c.did.didDeposit) + bal(c.did.byteDeposit));
    assert.equal(u8aToHex((await api.call.didApi.keyAgreementKey(who.address)).unwrap()), u8aToHex(key.publicKey));
  }
  const unverified = (await api.call.didApi.didDocument(seller.address)).unwrap();
  assert.equal(str(unverified.controller), seller.address);
  assert.equal(unverified.verified.isTrue, false);
  assert.equal(unverified.credentials.length, 0);
  assert.equal((await api.call.didApi.isVerified(seller.address)).isTrue, false);
  assert.equal((await api.call.trustApi.trustScore(seller.address)).toNumber(), 0, 'no credential, no trust score');

  const head = (await api.rpc.chain.getHeader()).number.toNumber();
  const expiresAt = head + 1_000_000;
  for (const who of [seller, buyer]) {
    const claimHash = blake2AsHex(`KYC dossier of ${who.address}`, 256);
    const { events } = await sendFinalized(api,
      api.tx.did.attestCredential({ Id: who.address }, 'KYC', claimHash, expiresAt), alice);
    const attested = theEvent(api, events, 'did', 'CredentialAttested');
    assert.deepEqual(attested.data.names, ['subject', 'issuer', 'id', 'expiresAt', 'deposit']);
    assert.equal(str(attested.data.subject), who.address);
    assert.equal(str(attested.data.issuer), alice.address);
    assert.equal(attested.data.expiresAt.toNumber(), expiresAt);
    assert.equal(bal(attested.data.deposit), bal(c.did.credentialDeposit) + 3n * bal(c.did.byteDeposit));
    // The id is computable off chain: blake2_256(SCALE(b"fastdata/credential", issuer, subject, type)).
    const preimage = api.createType('(Bytes, AccountId32, AccountId32, Bytes)',
      ['fastdata/credential', alice.address, who.address, 'KYC']).toU8a();
    assert.equal(attested.data.id.toHex(), blake2AsHex(preimage, 256));

    const doc = (await api.call.didApi.didDocument(who.address)).unwrap();
    assert.equal(doc.verified.isTrue, true);
    assert.equal(doc.credentials.length, 1);
    const [cred] = doc.credentials;
    assert.equal(cred.id.toHex(), attested.data.id.toHex());
    assert.equal(str(cred.issuer), alice.address);
    assert.equal(cred.credentialType.toUtf8(), 'KYC');
    assert.equal(cred.claimHash.toHex(), claimHash);
    assert.equal(cred.valid.isTrue, true);
    assert.equal(cred.issuerWeight.toNumber(), 1_000_000_000, 'the dev issuer weighs 100 %');
    assert.equal((await api.call.didApi.isVerified(who.address)).isTrue, true);
    // Without ratings, credibility is the prior for verified accounts and TS = ΣVI · Cr.
    const rep = await api.call.trustApi.reputation(who.address);
    assert.equal(rep.verified.isTrue, true);
    assert.equal(rep.credibility.toNumber(), c.trust.baseCredibility.toNumber());
    assert.equal(rep.trustScore.toNumber(), c.trust.baseCredibility.toNumber());
    assert.equal(rep.ratingsInWindow.toNumber(), 0);
  }
});

test('2. the verified seller lists a live offer; an operator registers; the stream is registered', async () => {
  const terms = {
    licence: 'Commercial', resaleAllowed: false, verifiedOnly: false, verifiedDiscount: DISCOUNT,
    minTrustScore: 0, retention: 100, replication: 1,
  };
  const mode = { Stream: { period: PERIOD } };
  // Different signers, so the two go into the same block.
  const [listed, registered] = await Promise.all([
    sendFinalized(api, api.tx.offers.createOffer(TOPIC, mode, PRICE, terms), seller),
    sendFinalized(api, api.tx.operators.register(c.operators.minStake, 'mqtt://127.0.0.1:18830',
      'http://127.0.0.1:18080', OPERATOR_PRICE), operator),
  ]);
  // An account without a verified DID cannot sell.
  assert.equal(await sendFailing(api, api.tx.offers.createOffer(TOPIC, mode, PRICE, terms), operator),
    'offers.SellerNotVerified');

  const created = theEvent(api, listed.events, 'offers', 'OfferCreated');
  assert.deepEqual(created.data.names, ['offer', 'seller', 'deposit']);
  assert.equal(str(created.data.seller), seller.address);
  assert.equal(bal(created.data.deposit), bal(c.offers.offerDeposit) + BigInt(TOPIC.length) * bal(c.offers.byteDeposit));
  const offerId = created.data.offer.toNumber();
  state.offer = offerId;

  const reg = theEvent(api, registered.events, 'operators', 'Registered');
  assert.deepEqual(reg.data.names, ['operator', 'stake', 'brokerUrl', 'httpUrl', 'pricePerMb']);
  assert.equal(str(reg.data.operator), operator.address);
  assert.equal(bal(reg.data.stake), 100n * UNIT);
  assert.equal(reg.data.brokerUrl.toUtf8(), 'mqtt://127.0.0.1:18830');
  const opView = (await api.call.operatorsApi.operator(operator.address)).unwrap();
  assert.equal(opView.status.type, 'Active');
  assert.equal(bal(opView.stake), 100n * UNIT);
  assert.equal(opView.httpUrl.toUtf8(), 'http://127.0.0.1:18080');
  assert.equal(bal(opView.pricePerMb), 1_000_000_000n);
  assert.ok((await api.call.operatorsApi.operators()).some((o) => str(o.account) === operator.address));
  assert.deepEqual((await freeAndHolds(operator.address)).holds,
    [{ id: { operators: 'OperatorStake' }, amount: 100n * UNIT }]);

  // The listing carries the seller's trust score (eq. 2) next to the offer.
  const sellerScore = (await api.call.trustApi.trustScore(seller.address)).toNumber();
  assert.ok(sellerScore > 0);
  const offer = (await api.call.offersApi.offer(offerId)).unwrap();
  assert.equal(offer.id.toNumber(), offerId);
  assert.equal(str(offer.seller), seller.address);
  assert.equal(offer.sellerTrustScore.toNumber(), sellerScore);
  assert.equal(offer.topic.toUtf8(), TOPIC);
  assert.deepEqual(offer.mode.toJSON(), { stream: { period: PERIOD } });
  assert.equal(bal(offer.price), PRICE);
  assert.deepEqual(offer.terms.toJSON(), { ...terms, licence: { commercial: null } });
  assert.equal(offer.stream.isNone, true);
  assert.equal(offer.retiredAt.isNone, true);
  const bySeller = await api.call.offersApi.offersBySeller(seller.address);
  assert.deepEqual(bySeller.map((o) => o.id.toNumber()), [offerId]);
  const page = await api.call.offersApi.offers(offerId, 1);
  assert.deepEqual(page.offers.map((o) => [o.id.toNumber(), str(o.seller), o.sellerTrustScore.toNumber()]),
    [[offerId, seller.address, sellerScore]]);

  // Nothing to buy before the stream exists.
  assert.equal(await sendFailing(api, api.tx.escrow.purchase(offerId, 1, PRICE), buyer), 'escrow.StreamNotRegistered');

  // streamID = blake2_256(seller ‖ name ‖ timestamp as u64 LE), computed before registering.
  const timestamp = Date.now();
  const streamId = blake2AsHex(u8aConcat(decodeAddress(seller.address), stringToU8a(STREAM_NAME),
    api.createType('u64', timestamp).toU8a()), 256);
  const { events, blockHash } = await sendFinalized(api,
    api.tx.offers.registerStream(offerId, STREAM_NAME, timestamp, commitment), seller);
  const sr = theEvent(api, events, 'offers', 'StreamRegistered');
  assert.deepEqual(sr.data.names, ['stream', 'offer', 'seller', 'commitment']);
  assert.equal(sr.data.stream.toHex(), streamId);
  assert.equal(sr.data.offer.toNumber(), offerId);
  assert.equal(str(sr.data.seller), seller.address);
  assert.equal(sr.data.commitment.toHex(), commitment);
  // The operators are drawn later, with randomness that did not exist when the seller signed:
  // on this dev chain the hash of a block after the registration's, dated by the (mock) relay
  // parent's number.
  const requested = theEvent(api, events, 'operators', 'AssignmentRequested');
  assert.equal(requested.data.stream.toHex(), streamId);
  assert.equal(requested.data.replication.toNumber(), 1);
  const relayParent = async (hash) => (await api.query.parachainSystem.lastRelayChainBlockNumber.at(hash)).toNumber();
  const drawAfter = requested.data.drawAfter.toNumber();
  assert.equal(drawAfter, (await relayParent(blockHash)) + c.operators.assignmentDelay.toNumber());
  const { event: sa, number: drawnAt } = await eventAfter(api, blockHash,
    (event) => api.events.operators.StreamAssigned.is(event) && event.data.stream.toHex() === streamId, 20);
  // Drawn in the first block whose relay parent is that late, before its transactions.
  assert.ok((await relayParent(await api.rpc.chain.getBlockHash(drawnAt))) >= drawAfter);
  assert.ok((await relayParent(await api.rpc.chain.getBlockHash(drawnAt - 1))) < drawAfter);
  const assigned = sa.data.operators.map(str);
  assert.equal(assigned.length, 1, 'replication 1');
  // The only active operator (the e2e tests before this one remove theirs) hosts the stream.
  assert.equal(assigned[0], operator.address);
  const host = (await api.call.operatorsApi.operator(assigned[0])).unwrap();
  assert.equal(host.status.type, 'Active');
  assert.ok((await api.call.operatorsApi.streamsOf(assigned[0])).some((s) => s.toHex() === streamId));
  state.stream = streamId;

  const stream = (await api.call.offersApi.stream(streamId)).unwrap();
  assert.equal(str(stream.seller), seller.address);
  assert.equal(stream.offer.toNumber(), offerId);
  assert.equal(stream.name.toUtf8(), STREAM_NAME);
  assert.deepEqual(stream.operators.map(str), assigned);
  assert.equal(stream.epoch.toNumber(), 0);
  assert.equal(stream.epochCommitment.unwrap().toHex(), commitment);
  assert.equal(stream.closedAt.isNone, true);
  assert.equal((await api.call.offersApi.offer(offerId)).unwrap().stream.unwrap().toHex(), streamId);
  // Opened unfunded: the operators store nothing of it yet.
  assert.deepEqual([stream.quotaMb.toNumber(), stream.hostingFunded.isTrue], [0, false]);

  // The seller pays for hosting: a quota and funds held from its account.
  assert.equal(await sendFailing(api, api.tx.operators.fundHosting(streamId, QUOTA_MB, HOSTING_FUNDS), buyer),
    'operators.NotPayer');
  const { events: funded } = await sendFinalized(api,
    api.tx.operators.fundHosting(streamId, QUOTA_MB, HOSTING_FUNDS), seller);
  const hf = theEvent(api, funded, 'operators', 'HostingFunded');
  assert.deepEqual(hf.data.names, ['stream', 'payer', 'quotaMb', 'added', 'funds']);
  assert.deepEqual([hf.data.stream.toHex(), str(hf.data.payer), hf.data.quotaMb.toNumber(), bal(hf.data.added), bal(hf.data.funds)],
    [streamId, seller.address, QUOTA_MB, HOSTING_FUNDS, HOSTING_FUNDS]);
  assert.deepEqual((await freeAndHolds(seller.address)).holds.filter((h) => 'operators' in h.id),
    [{ id: { operators: 'Hosting' }, amount: HOSTING_FUNDS }]);
  const hosted = (await api.call.offersApi.stream(streamId)).unwrap();
  assert.deepEqual([hosted.quotaMb.toNumber(), hosted.hostingFunded.isTrue], [QUOTA_MB, true]);
});

test('3. a verified buyer purchases one period of the stream', async () => {
  assert.ok(state.stream, 'needs the stream of step 2');
  const price = PRICE - (PRICE * BigInt(DISCOUNT)) / 1_000_000_000n; // verified-buyer discount
  // max_price protects the buyer: below the discounted price the purchase fails.
  assert.equal(await sendFailing(api, api.tx.escrow.purchase(state.offer, 1, price - 1n), buyer),
    'escrow.PriceAboveMaximum');

  // Verification lasts: with its credential revoked, the seller's listed offer cannot be
  // bought; attested again, it can.
  const [cred] = (await api.call.didApi.didDocument(seller.address)).unwrap().credentials;
  await sendFinalized(api, api.tx.did.revokeCredential({ Id: seller.address }, cred.id), alice);
  assert.equal((await api.call.didApi.isVerified(seller.address)).isTrue, false);
  assert.equal(await sendFailing(api, api.tx.escrow.purchase(state.offer, 1, price), buyer),
    'escrow.SellerNotVerified');
  await sendFinalized(api, api.tx.did.removeCredential({ Id: seller.address }, cred.id), alice);
  await sendFinalized(api, api.tx.did.attestCredential({ Id: seller.address }, 'KYC', cred.claimHash,
    (await api.rpc.chain.getHeader()).number.toNumber() + 1_000_000), alice);
  assert.equal((await api.call.didApi.isVerified(seller.address)).isTrue, true);

  const { events, blockHash } = await sendFinalized(api, api.tx.escrow.purchase(state.offer, 1, price), buyer);
  const at = await blockNumber(api, blockHash);
  const bought = theEvent(api, events, 'escrow', 'Purchased');
  assert.deepEqual(bought.data.names,
    ['purchase', 'offer', 'buyer', 'seller', 'price', 'deposit', 'periods', 'accessEnd', 'keyDeadline']);
  const id = bought.data.purchase.toNumber();
  state.purchase = id;
  assert.equal(bought.data.offer.toNumber(), state.offer);
  assert.equal(str(bought.data.buyer), buyer.address);
  assert.equal(str(bought.data.seller), seller.address);
  assert.equal(bal(bought.data.price), price);
  assert.equal(bal(bought.data.deposit), bal(c.escrow.purchaseDeposit));
  assert.equal(bought.data.periods.toNumber(), 1);
  assert.equal(bought.data.accessEnd.toNumber(), at + PERIOD);
  assert.equal(bought.data.keyDeadline.toNumber(), at + c.escrow.keyDeliveryPeriod.toNumber());

  // The price and the storage deposit are held from the buyer, by named hold reasons.
  const { holds } = await freeAndHolds(buyer.address);
  assert.deepEqual(holds.filter((h) => 'escrow' in h.id), [
    { id: { escrow: 'PurchasePrice' }, amount: price },
    { id: { escrow: 'PurchaseDeposit' }, amount: bal(c.escrow.purchaseDeposit) },
  ]);

  const view = (await api.call.escrowApi.purchase(id)).unwrap();
  assert.equal(view.id.toNumber(), id);
  assert.equal(str(view.buyer), buyer.address);
  assert.equal(str(view.seller), seller.address);
  assert.equal(view.offer.toNumber(), state.offer);
  assert.equal(view.stream.toHex(), state.stream);
  assert.deepEqual(view.terms.toJSON(), { stream: { period: PERIOD, periods: 1 } });
  assert.equal(u8aToHex(view.buyerKey), u8aToHex(buyerKey.publicKey), 'snapshot of the buyer\'s DID key');
  assert.equal(bal(view.price), price);
  assert.equal(view.state.type, 'AwaitingKeys');
  assert.deepEqual(view.access.toJSON(), { start: at, end: at + PERIOD, firstEpoch: 0, epochs: [] });
  assert.equal(view.keyDeadline.toNumber(), at + c.escrow.keyDeliveryPeriod.toNumber());
  assert.equal(view.settledPeriods.toNumber(), 0);
  assert.equal(bal(view.ledger.held), price);
  assert.equal(view.dispute.isNone, true);
  assert.deepEqual((await api.call.escrowApi.purchasesOfBuyer(buyer.address)).map((x) => x.toNumber()), [id]);
  assert.deepEqual((await api.call.escrowApi.purchasesOfOffer(state.offer)).map((x) => x.toNumber()), [id]);

  // No rating before the trade is settled.
  assert.equal(await sendFailing(api, api.tx.trust.rate(id, 100, null), buyer), 'trust.TradeNotSettled');

  // The period pays by what is published in it: the head at purchase (nothing attested
  // yet) and, recorded at the period's end, the head the operator attests now.
  assert.equal(view.startHead.unwrap().toNumber(), 0);
  assert.deepEqual(view.periodHeads.map((h) => h.toNumber()), [0]);
  const { events: attested, blockHash: attestedIn } = await sendFinalized(api,
    api.tx.operators.attestHeads([[state.stream, SEGMENTS, 2n * MB]]), operator);
  assert.ok(await blockNumber(api, attestedIn) < at + PERIOD, 'attested inside the period');
  const ha = theEvent(api, attested, 'operators', 'HeadsAttested');
  assert.deepEqual(ha.data.names, ['operator', 'streams']);
  assert.deepEqual([str(ha.data.operator), ha.data.streams.toNumber()], [operator.address, 1]);
  // Heads never go back.
  assert.equal(await sendFailing(api, api.tx.operators.attestHeads([[state.stream, SEGMENTS - 1, 2n * MB]]), operator),
    'operators.HeadDecreased');

  // The next attestation pays the operator for hosting since the first, from the seller's
  // hosting funds: the bytes attested before (2 MB; it now claims far beyond the quota).
  const opBefore = await freeAndHolds(operator.address);
  const { events: again, blockHash: againIn } = await sendFinalized(api,
    api.tx.operators.attestHeads([[state.stream, SEGMENTS, 500n * MB]]), operator);
  const paid = theEvent(api, again, 'operators', 'HostingPaid');
  assert.deepEqual(paid.data.names, ['stream', 'operator', 'amount', 'bytes', 'blocks']);
  const blocks = (await blockNumber(api, againIn)) - (await blockNumber(api, attestedIn));
  assert.deepEqual([paid.data.stream.toHex(), str(paid.data.operator), paid.data.bytes.toBigInt(), paid.data.blocks.toNumber()],
    [state.stream, operator.address, 2n * MB, blocks]);
  const hostingPeriod = BigInt(c.operators.hostingPeriod.toNumber());
  const perPeriod = bal(c.operators.hostingPricePerMb) * 2n;
  const amount = bal(paid.data.amount);
  // Perbill(blocks / period) of one period's pay, rounded to the Perbill.
  assert.ok(amount > 0n && amount <= (perPeriod * BigInt(blocks)) / hostingPeriod + 1n, `hosting pay ${amount}`);
  const fee = bal(theEvent(api, again, 'transactionPayment', 'TransactionFeePaid').data.actualFee);
  assert.equal((await freeAndHolds(operator.address)).free, opBefore.free + amount - fee);
  assert.deepEqual((await freeAndHolds(seller.address)).holds.filter((h) => 'operators' in h.id),
    [{ id: { operators: 'Hosting' }, amount: HOSTING_FUNDS - amount }]);
});

test('4. the seller seals the epoch keys to the buyer; the buyer opens them from chain', async () => {
  assert.ok(state.purchase !== undefined, 'needs the purchase of step 3');
  const id = state.purchase;
  const view = (await api.call.escrowApi.purchase(id)).unwrap();
  const sealed = sealEpochKeys(api, view.buyerKey, id, 0, kE, kM);
  assert.equal(sealed.length, SEALED_KEY_LEN_V1);

  const { events } = await sendFinalized(api, api.tx.escrow.deliverKeys(id, 0, u8aToHex(sealed)), seller);
  const delivered = theEvent(api, events, 'escrow', 'KeysDelivered');
  assert.deepEqual(delivered.data.names, ['purchase', 'epoch', 'deposit']);
  assert.equal(delivered.data.purchase.toNumber(), id);
  assert.equal(delivered.data.epoch.toNumber(), 0);
  assert.equal(bal(delivered.data.deposit),
    bal(c.escrow.keyDepositBase) + BigInt(SEALED_KEY_LEN_V1) * bal(c.escrow.keyDepositPerByte));
  assert.equal(theEvent(api, events, 'escrow', 'PurchaseActivated').data.purchase.toNumber(), id);

  const active = (await api.call.escrowApi.purchase(id)).unwrap();
  assert.equal(active.state.type, 'Active');
  assert.deepEqual(active.access.epochs.map((e) => e.toNumber()), [0]);
  assert.equal(active.nextSettlement.unwrap().toNumber(),
    active.access.end.toNumber() + c.escrow.claimGracePeriod.toNumber());

  // The buyer reads the sealed bytes back and opens them with its X25519 secret; the keys
  // match the stream's on-chain commitment. Nobody else can open them.
  const onChain = (await stateCall(api, 'EscrowApi_sealed_key', [['u64', id], ['u32', 0]], 'Option<Bytes>')).unwrap();
  assert.equal(onChain.toHex(), u8aToHex(sealed));
  assert.equal((await api.query.escrow.sealedKeys(id, 0)).unwrap().toHex(), u8aToHex(sealed));
  // api.call.escrowApi.sealedKey (and so apps' "Runtime calls" page) shows the undecoded answer,
  // SCALE(Some(sealed)), as the bytes; see stateCall in lib.mjs.
  assert.equal(u8aToHex((await api.call.escrowApi.sealedKey(id, 0)).unwrap().toU8a(true)),
    u8aToHex(u8aConcat([1], api.createType('Bytes', u8aToHex(sealed)).toU8a())));
  const opened = openEpochKeys(api, buyerKey.secret, id, 0, onChain);
  assert.deepEqual([u8aToHex(opened.kE), u8aToHex(opened.kM)], [u8aToHex(kE), u8aToHex(kM)]);
  const stream = (await api.call.offersApi.stream(state.stream)).unwrap();
  assert.equal(blake2AsHex(u8aConcat(opened.kE, opened.kM), 256), stream.epochCommitment.unwrap().toHex());
  assert.throws(() => openEpochKeys(api, sellerKey.secret, id, 0, onChain), 'only the buyer\'s key opens them');
  assert.throws(() => openEpochKeys(api, buyerKey.secret, id + 1, 0, onChain), 'bound to the purchase id');
});

// The buyer's receipt for `operator`: SCALE((domain, genesis, receipt)) signed with sr25519.
function signReceipt(signer, genesis, receipt) {
  const message = api.createType('(Bytes, H256, u64, AccountId32, u64, u64, u64)', [
    u8aToHex(stringToU8a(RECEIPT_DOMAIN)), genesis, receipt.purchase, receipt.operator, receipt.upToSequence,
    receipt.bytes, receipt.nonce,
  ]).toU8a();
  return { Sr25519: u8aToHex(signer.sign(message)) };
}

test('5. receipts are claimed; the period settles by what was delivered; both sides rate', { timeout: 150_000 }, async () => {
  assert.ok(state.purchase !== undefined, 'needs the purchase of step 3');
  const id = state.purchase;
  const active = (await api.call.escrowApi.purchase(id)).unwrap();
  assert.equal(active.state.type, 'Active', 'needs the keys of step 4');
  const price = bal(active.price);
  const due = active.nextSettlement.unwrap().toNumber();

  // The buyer acknowledges all 20 segments to the operator, for this chain only.
  const receipt = { purchase: id, operator: operator.address, upToSequence: SEGMENTS - 1, bytes: BYTES, nonce: 1 };
  const beyond = { ...receipt, upToSequence: SEGMENTS };
  assert.equal(await sendFailing(api, api.tx.escrow.claim(beyond, signReceipt(buyer, api.genesisHash, beyond)),
    operator), 'escrow.BeyondStreamHead');
  const elsewhere = signReceipt(buyer, blake2AsHex('another chain', 256), receipt);
  assert.equal(await sendFailing(api, api.tx.escrow.claim(receipt, elsewhere), operator), 'escrow.InvalidSignature');
  const { events: claimed } = await sendFinalized(api,
    api.tx.escrow.claim(receipt, signReceipt(buyer, api.genesisHash, receipt)), operator);
  const rc = theEvent(api, claimed, 'escrow', 'ReceiptClaimed');
  assert.deepEqual(rc.data.names, ['purchase', 'operator', 'upToSequence', 'bytes', 'accrued']);
  const accrued = (BYTES * OPERATOR_PRICE) / 1_000_000n;
  assert.deepEqual([rc.data.purchase.toNumber(), str(rc.data.operator), rc.data.upToSequence.toNumber(),
    rc.data.bytes.toBigInt(), bal(rc.data.accrued)], [id, operator.address, SEGMENTS - 1, BYTES, accrued]);

  // The operator's daemon keeps its heartbeat while the period runs.
  const { events: hb } = await sendFinalized(api, api.tx.operators.heartbeat(), operator);
  assert.equal(str(theEvent(api, hb, 'operators', 'HeartbeatReceived').data.operator), operator.address);

  // Anyone may settle a period once its claim grace period is over (free when it succeeds);
  // the buyer does it as soon as the next block is `due`. (on_idle would do it by itself,
  // but only when the agenda next looks at the purchase: key deadline + 1 = start + 100.)
  assert.equal(await sendFailing(api, api.tx.escrow.settle(id), buyer), 'escrow.SettlementNotDue');
  const now = await blockNumber(api, await api.rpc.chain.getFinalizedHead());
  await untilFinalized(api, async (_hash, number) => number + 1 >= due, due - now + 5);
  const buyerBefore = await freeAndHolds(buyer.address);
  const { events, blockHash } = await sendFinalized(api, api.tx.escrow.settle(id), buyer);
  const settledAt = await blockNumber(api, blockHash);
  assert.ok(settledAt >= due, `settled at #${settledAt}, not before #${due}`);
  const ps = theEvent(api, events, 'escrow', 'PeriodSettled');
  assert.deepEqual(ps.data.names, ['purchase', 'period', 'operators', 'seller', 'fee', 'refunded']);
  assert.equal(ps.data.purchase.toNumber(), id);
  // All 20 segments of the period acknowledged: the whole budget is delivered. The operator
  // gets its price per MB, the seller the rest minus the protocol fee, the buyer nothing back.
  const gross = price - accrued;
  const fee = (gross * BigInt(c.escrow.protocolFee.toNumber())) / 1_000_000_000n;
  assert.deepEqual([ps.data.period.toNumber(), bal(ps.data.operators), bal(ps.data.seller), bal(ps.data.fee),
    bal(ps.data.refunded)], [0, accrued, gross - fee, fee, 0n]);
  const settled = theEvent(api, events, 'escrow', 'PurchaseSettled');
  assert.deepEqual(settled.data.names, ['purchase', 'value']);
  assert.equal(settled.data.purchase.toNumber(), id);
  assert.equal(bal(settled.data.value), price);

  const view = (await api.call.escrowApi.purchase(id)).unwrap();
  assert.equal(view.state.type, 'Settled');
  assert.equal(view.settledPeriods.toNumber(), 1);
  assert.equal(view.nextSettlement.isNone, true);
  assert.equal(view.closedAt.unwrap().toNumber(), settledAt);
  assert.deepEqual(
    Object.fromEntries(['held', 'operators', 'seller', 'fees', 'refunded'].map((k) => [k, bal(view.ledger[k])])),
    { held: 0n, operators: accrued, seller: gross - fee, fees: fee, refunded: 0n });
  assert.equal(view.startHead.unwrap().toNumber(), 0);
  assert.deepEqual(view.periodHeads.map((h) => h.toNumber()), [SEGMENTS]);
  const buyerAfter = await freeAndHolds(buyer.address);
  assert.equal(buyerAfter.free, buyerBefore.free, 'nothing came back to the buyer (settlement is free)');
  assert.deepEqual(buyerAfter.holds.filter((h) => 'escrow' in h.id),
    [{ id: { escrow: 'PurchaseDeposit' }, amount: bal(c.escrow.purchaseDeposit) }]);

  // Each side rates the other once (one after the other: a rating changes the credibility
  // the next one carries).
  const sellerBefore = await api.call.trustApi.reputation(seller.address);
  const buyerCr = (await api.call.trustApi.credibility(buyer.address)).toNumber();
  const comment = blake2AsHex('keys arrived on time', 256);
  const byBuyer = await sendFinalized(api, api.tx.trust.rate(id, 90, comment), buyer);
  const rated = theEvent(api, byBuyer.events, 'trust', 'Rated');
  assert.deepEqual(rated.data.names, ['purchase', 'rater', 'ratee', 'score', 'comment', 'raterCredibility',
    'valueWeight', 'context', 'credibility', 'deposit']);
  assert.equal(rated.data.purchase.toNumber(), id);
  assert.equal(str(rated.data.rater), buyer.address);
  assert.equal(str(rated.data.ratee), seller.address);
  assert.equal(rated.data.score.toNumber(), 90);
  assert.equal(rated.data.comment.unwrap().toHex(), comment);
  assert.equal(rated.data.raterCredibility.toNumber(), buyerCr);
  // τ = v / (v + V) of the trade's value v (the price, all of it delivered).
  const V = bal(c.trust.referenceValue);
  const context = rated.data.context.toNumber();
  assert.equal(context, Number((price * 1_000_000_000n) / (price + V)));
  // φ = min(1, v / V): the rating weighs by the value the trade paid.
  const valueWeight = rated.data.valueWeight.toNumber();
  assert.equal(valueWeight, price >= V ? 1_000_000_000 : Number((price * 1_000_000_000n) / V));
  assert.equal(bal(rated.data.deposit), bal(c.trust.ratingDeposit));
  const sellerCr = credibilityAfterOneRating(buyerCr, 90, context, valueWeight);
  assert.equal(rated.data.credibility.toNumber(), sellerCr);

  const bySeller = await sendFinalized(api, api.tx.trust.rate(id, 100, null), seller);
  const back = theEvent(api, bySeller.events, 'trust', 'Rated');
  assert.deepEqual([str(back.data.rater), str(back.data.ratee), back.data.score.toNumber(), back.data.comment.isNone],
    [seller.address, buyer.address, 100, true]);
  assert.equal(back.data.raterCredibility.toNumber(), sellerCr);
  assert.equal(back.data.context.toNumber(), context);
  assert.equal(back.data.credibility.toNumber(), credibilityAfterOneRating(sellerCr, 100, context, valueWeight));
  assert.equal(await sendFailing(api, api.tx.trust.rate(id, 10, null), buyer), 'trust.AlreadyRated');

  // A credible buyer's 90/100 lifts the seller above the prior; the listing shows it.
  const sellerAfter = await api.call.trustApi.reputation(seller.address);
  assert.equal(sellerAfter.ratingsInWindow.toNumber(), sellerBefore.ratingsInWindow.toNumber() + 1);
  assert.equal(sellerAfter.credibility.toNumber(), sellerCr);
  assert.ok(sellerCr > sellerBefore.credibility.toNumber(), `credibility ${sellerBefore.credibility} -> ${sellerCr}`);
  assert.equal(sellerAfter.trustScore.toNumber(), sellerCr, 'TS = ΣVI · Cr with the dev issuer\'s VI = 100 %');
  const listing = (await api.call.offersApi.offer(state.offer)).unwrap();
  assert.equal(listing.sellerTrustScore.toNumber(), sellerAfter.trustScore.toNumber());
  assert.deepEqual((await api.call.trustApi.trustScores([seller.address, buyer.address])).map((x) => x.toNumber()),
    [sellerCr, credibilityAfterOneRating(sellerCr, 100, context, valueWeight)]);
});

// Credibility (eq. 1, pallets/trust) of a verified account after one rating `score` by a rater
// of credibility `raterCr` on a trade of context τ and value weight φ (Perbills), with
// K = PriorWeight, C0 = BaseCredibility, γ = ContextWeight (Perbill), v = ⌊φ·raterCr⌋,
// w = ⌊τ·raterCr⌋:
//   A = ⌊(K·C0 + 10⁴·v·score) / (K + v)⌋,  A_τ = ⌊(K·C0 + 10⁴·w·score) / (K + w)⌋,
//   Cr = ⌊(1−γ)·A⌋ + ⌊γ·A_τ⌋.
function credibilityAfterOneRating(raterCr, score, context, valueWeight) {
  const K = BigInt(c.trust.priorWeight.toNumber());
  const C0 = BigInt(c.trust.baseCredibility.toNumber());
  const gamma = BigInt(c.trust.contextWeight.toNumber());
  const cr = BigInt(raterCr);
  const w = (BigInt(context) * cr) / 1_000_000_000n;
  const v = (BigInt(valueWeight) * cr) / 1_000_000_000n;
  const A = (K * C0 + 10_000n * v * BigInt(score)) / (K + v);
  const At = (K * C0 + 10_000n * w * BigInt(score)) / (K + w);
  return Number((A * (1_000_000_000n - gamma)) / 1_000_000_000n + (At * gamma) / 1_000_000_000n);
}

test('6. the seller closes the stream and the operator leaves', async () => {
  assert.ok(state.stream, 'needs the stream of step 2');
  const { events } = await sendFinalized(api, api.tx.offers.closeStream(state.stream), seller);
  const closed = theEvent(api, events, 'offers', 'StreamClosed');
  assert.deepEqual(closed.data.names, ['stream', 'servingUntil']);
  assert.equal(closed.data.stream.toHex(), state.stream);
  // The one purchase was settled in step 5: nobody needs the stream, its operator is released.
  assert.equal(closed.data.servingUntil.isNone, true);
  assert.equal(theEvent(api, events, 'operators', 'StreamReleased').data.stream.toHex(), state.stream);
  assert.equal(theEvent(api, events, 'offers', 'OfferRetired').data.offer.toNumber(), state.offer);
  assert.ok((await api.call.offersApi.offer(state.offer)).unwrap().retiredAt.isSome);
  assert.ok((await api.call.offersApi.stream(state.stream)).unwrap().closedAt.isSome);

  const { events: left, blockHash } = await sendFinalized(api, api.tx.operators.leave(), operator);
  const leave = theEvent(api, left, 'operators', 'LeaveStarted');
  assert.equal(str(leave.data.operator), operator.address);
  assert.equal(leave.data.unbondingUntil.toNumber(),
    (await blockNumber(api, blockHash)) + c.operators.unbondingPeriod.toNumber());
  const status = (await api.call.operatorsApi.operator(operator.address)).unwrap().status;
  assert.equal(status.type, 'Leaving');
});

test('7. issuers are registered by two thirds of the arbiters, never by one', async () => {
  const bob = keyring.addFromUri('//Bob');
  const charlie = keyring.addFromUri('//Charlie');
  const issuer = keyring.addFromUri(`//fd-js-${run}-issuer`);
  const members = (await api.query.arbiters.members()).map(str).sort();
  assert.deepEqual(members, [alice.address, bob.address, charlie.address].sort());
  const call = api.tx.did.registerIssuer(issuer.address, 'JS test issuer', 500_000_000);
  const len = call.method.encodedLength;

  // One arbiter alone: the motion runs at once as 1 of 3, which the issuer origin refuses.
  const { events: alone } = await sendFinalized(api, api.tx.arbiters.propose(1, call, len), bob);
  const refused = theEvent(api, alone, 'arbiters', 'Executed');
  assert.ok(refused.data.result.isErr && refused.data.result.asErr.isBadOrigin, 'BadOrigin');
  assert.equal(await issuerOf(issuer.address), undefined);
  // Not an arbiter: no motion at all.
  assert.equal(await sendFailing(api, api.tx.arbiters.propose(2, call, len), seller), 'arbiters.NotMember');

  // Two of three: Alice proposes, Bob and Charlie vote aye, anyone closes.
  const { events: proposedEvents } = await sendFinalized(api, api.tx.arbiters.propose(2, call, len), alice);
  const proposed = theEvent(api, proposedEvents, 'arbiters', 'Proposed');
  const { proposalHash, proposalIndex } = proposed.data;
  for (const [voter, yes] of [[bob, 1], [charlie, 2]]) {
    const { events: votedEvents } = await sendFinalized(api, api.tx.arbiters.vote(proposalHash, proposalIndex, true), voter);
    assert.equal(theEvent(api, votedEvents, 'arbiters', 'Voted').data.yes.toNumber(), yes);
  }
  const { events: closedEvents } = await sendFinalized(api,
    api.tx.arbiters.close(proposalHash, proposalIndex, { refTime: 10_000_000_000n, proofSize: 1_000_000n }, len), seller);
  const executed = theEvent(api, closedEvents, 'arbiters', 'Executed');
  assert.ok(executed.data.result.isOk, 'the motion executed');
  const registered = theEvent(api, closedEvents, 'did', 'IssuerRegistered');
  assert.equal(str(registered.data.issuer), issuer.address);
  assert.equal(registered.data.weight.toNumber(), 500_000_000);
  assert.equal((await issuerOf(issuer.address)).weight.toNumber(), 500_000_000);
});

// An operator's signed word on a served segment: SCALE((domain, genesis, (stream, sequence,
// blake2_256(envelope)))) signed with its account's sr25519 key, as its daemon does.
const STATEMENT_DOMAIN = 'fastdata/segment-statement/v1';
function signStatement(signer, genesis, stream, sequence, envelope) {
  const statement = { stream, sequence, digest: blake2AsHex(envelope, 256) };
  const message = api.createType('(Bytes, H256, H256, u64, H256)', [
    u8aToHex(stringToU8a(STATEMENT_DOMAIN)), genesis, statement.stream, statement.sequence, statement.digest,
  ]).toU8a();
  return [statement, { Sr25519: u8aToHex(signer.sign(message)) }];
}

test('8. an operator that signs two contents for one segment is slashed on anyone\'s report', async () => {
  const cheat = keyring.addFromUri(`//fd-js-${run}-cheat`);
  const reporter = keyring.addFromUri(`//fd-js-${run}-reporter`);
  const stake = c.operators.minStake.toBigInt() * 2n;
  for (const [who, amount] of [[cheat, stake + 10n * UNIT], [reporter, 10n * UNIT]]) {
    await sendFinalized(api, api.tx.balances.transferKeepAlive(who.address, amount), alice);
  }
  await sendFinalized(api, api.tx.operators.register(stake, 'mqtt://127.0.0.1:18831',
    'http://127.0.0.1:18081', OPERATOR_PRICE), cheat);
  const stream = blake2AsHex(stringToU8a(`fd-js-${run}-stream`), 256);
  const stored = signStatement(cheat, api.genesisHash, stream, 7, stringToU8a('what the seller published'));
  const served = signStatement(cheat, api.genesisHash, stream, 7, stringToU8a('what a buyer was served'));

  // Not a conflict, or not the operator's signature: refused, nothing slashed.
  assert.equal(await sendFailing(api, api.tx.operators.reportEquivocation(cheat.address, stored, stored), reporter),
    'operators.NoConflict');
  const framed = signStatement(reporter, api.genesisHash, stream, 7, stringToU8a('forged by the reporter'));
  assert.equal(await sendFailing(api, api.tx.operators.reportEquivocation(cheat.address, stored, framed), reporter),
    'operators.BadStatementSignature');
  const foreign = signStatement(cheat, '0x' + '11'.repeat(32), stream, 7, stringToU8a('on another chain'));
  assert.equal(await sendFailing(api, api.tx.operators.reportEquivocation(cheat.address, stored, foreign), reporter),
    'operators.BadStatementSignature');

  const reporterBefore = (await freeAndHolds(reporter.address)).free;
  const cheatBefore = await freeAndHolds(cheat.address);
  const issuanceBefore = (await api.query.balances.totalIssuance()).toBigInt();
  const { events } = await sendFinalized(api, api.tx.operators.reportEquivocation(cheat.address, stored, served), reporter);
  const reported = theEvent(api, events, 'operators', 'EquivocationReported');
  assert.deepEqual(reported.data.names, ['operator', 'reporter', 'stream', 'sequence']);
  assert.deepEqual([str(reported.data.operator), str(reported.data.reporter), reported.data.stream.toHex(),
    reported.data.sequence.toNumber()], [cheat.address, reporter.address, stream, 7]);
  // A tenth of the stake, burned; the reporter pays no fee.
  const slashAmount = stake / 10n;
  const slashed = theEvent(api, events, 'operators', 'Slashed');
  assert.deepEqual([str(slashed.data.operator), bal(slashed.data.amount)], [cheat.address, slashAmount]);
  const expectedEvidence = blake2AsHex(api.createType('((H256, u64, H256, MultiSignature), (H256, u64, H256, MultiSignature))',
    [[stream, 7, stored[0].digest, stored[1]], [stream, 7, served[0].digest, served[1]]]).toU8a(), 256);
  assert.equal(slashed.data.evidence.toHex(), expectedEvidence);
  const cheatAfter = await freeAndHolds(cheat.address);
  const held = (h) => h.holds.reduce((sum, x) => sum + x.amount, 0n);
  assert.equal(held(cheatBefore) - held(cheatAfter), slashAmount);
  assert.equal(cheatAfter.free, cheatBefore.free);
  assert.equal((await freeAndHolds(reporter.address)).free, reporterBefore);
  assert.equal(issuanceBefore - (await api.query.balances.totalIssuance()).toBigInt(), slashAmount);
  const record = (await api.call.operatorsApi.operator(cheat.address)).unwrap();
  assert.equal(record.stake.toBigInt(), stake - slashAmount);
  // Once per operator and stream.
  assert.equal(await sendFailing(api, api.tx.operators.reportEquivocation(cheat.address, served, stored), reporter),
    'operators.AlreadyReported');
  await sendFinalized(api, api.tx.operators.leave(), cheat);
});
