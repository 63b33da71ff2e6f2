// Writes a repo CAR made by @atproto/repo (the TypeScript reference implementation).
import { Repo, MemoryBlockstore, WriteOpAction, getFullRepo } from '@atproto/repo'
import { Secp256k1Keypair } from '@atproto/crypto'
import { TID } from '@atproto/common-web'
import fs from 'node:fs'
const [out, countArg] = process.argv.slice(2)
const n = Number(countArg || 50)
const keypair = await Secp256k1Keypair.create({ exportable: true })
const storage = new MemoryBlockstore()
const did = 'did:plc:interoptestrepo00000000'
let repo = await Repo.create(storage, did, keypair)
const writes = []
for (let i = 0; i < n; i++) {
  const collection = i % 3 === 0 ? 'app.bsky.feed.like' : 'app.bsky.feed.post'
  writes.push({ action: WriteOpAction.Create, collection, rkey: TID.nextStr(),
    record: { $type: collection, text: `record ${i} ✨`, createdAt: new Date().toISOString(), n: i } })
}
repo = await repo.applyWrites(writes, keypair)
const chunks = []
for await (const c of getFullRepo(storage, repo.cid)) chunks.push(c)
fs.writeFileSync(out, Buffer.concat(chunks))
// What was written, beside the CAR, so tests can compare a reader's output with the source records.
const recordsFile = `${out}.records.json`
fs.writeFileSync(recordsFile, JSON.stringify(writes.map(({ collection, rkey, record }) => ({ collection, rkey, record }))))
console.log(JSON.stringify({ did, didKey: keypair.did(), commit: repo.cid.toString(), rev: repo.commit.rev, count: n, recordsFile }))
