// Fetches com.atproto.sync.getRepo for one account and verifies the CAR with Bluesky's @atproto/repo:
// block hashes, the commit signature against the signing key in the DID document (resolved from the PLC
// directory with @atproto/identity), the MST walk with every record present, and that an MST built afresh
// from the same entries has the same root. Prints one JSON object; any thrown error exits non-zero.
//   node verify_repo.mjs <pdsUrl> <plcUrl> <did>
import { IdResolver } from '@atproto/identity'
import { Secp256k1Keypair } from '@atproto/crypto'
import {
  MST,
  MemoryBlockstore,
  Repo,
  RepoVerificationError,
  cborToLexRecord,
  readCarWithRoot,
  verifyRepoCar,
} from '@atproto/repo'

const [pds, plcUrl, did] = process.argv.slice(2)

const res = await fetch(`${pds}/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(did)}`)
if (res.status !== 200) throw new Error(`getRepo: HTTP ${res.status} ${await res.text()}`)
const contentType = res.headers.get('content-type')
const car = new Uint8Array(await res.arrayBuffer())

// A local http:// directory: the documented opt-out of the SSRF-guarded default fetch is passing our own.
const idResolver = new IdResolver({ plcUrl, fetch: globalThis.fetch })
const signingKey = await idResolver.did.resolveAtprotoKey(did, true)

// The reference verification: CAR block hashes, DID, signature, full MST walk with all leaves present.
const verified = await verifyRepoCar(car, did, signingKey)

// The same CAR must be rejected under another key.
const other = await Secp256k1Keypair.create()
let wrongKey = null
try {
  await verifyRepoCar(car, did, other.did())
} catch (err) {
  wrongKey = { rejected: true, verificationError: err instanceof RepoVerificationError, message: err.message }
}

// Structure: rebuilding the tree from its own entries must give the same root (a canonical MST).
const { root, blocks } = await readCarWithRoot(car)
const repo = await Repo.load(new MemoryBlockstore(blocks), root)
const leaves = await repo.data.list()
let rebuilt = await MST.create(new MemoryBlockstore())
for (const leaf of leaves) rebuilt = await rebuilt.add(leaf.key, leaf.value)
const rebuiltRoot = (await rebuilt.getPointer()).toString()

const records = []
for (const leaf of leaves) {
  const bytes = blocks.get(leaf.value)
  const value = cborToLexRecord(bytes)
  records.push({ path: leaf.key, cid: leaf.value.toString(), text: value.text ?? null, type: value.$type ?? null })
}

console.log(
  JSON.stringify({
    contentType,
    carBytes: car.length,
    signingKey,
    root: root.toString(),
    commit: verified.commit.cid.toString(),
    rev: verified.commit.rev,
    did: repo.did,
    version: repo.commit.version,
    dataCid: repo.commit.data.toString(),
    rebuiltRoot,
    verifiedCount: verified.creates.length,
    count: records.length,
    records,
    wrongKey,
  }),
)
