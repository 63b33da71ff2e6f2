// Drives a PDS with Bluesky's own client, @atproto/api (AtpAgent), unmodified, and prints what it saw as
// one JSON object; the Python test makes the assertions. Any thrown error exits non-zero.
//   node api_client.mjs <pdsUrl> <handle> <password> <email> <imagePath>
import { AtpAgent } from '@atproto/api'
import fs from 'node:fs'

const [service, handle, password, email, imagePath] = process.argv.slice(2)
const POST = 'app.bsky.feed.post'
const out = {}

// Account creation through the client, then a fresh agent that logs in with the password.
const creator = new AtpAgent({ service })
const created = await creator.createAccount({ handle, email, password })
out.created = { did: created.data.did, handle: created.data.handle }
const agent = new AtpAgent({ service })
const login = await agent.login({ identifier: handle, password })
const did = agent.session.did
out.login = { did: login.data.did, handle: login.data.handle, active: login.data.active ?? null }
out.pdsUrl = agent.pdsUrl ? agent.pdsUrl.toString() : null

// Posts: a few through the high-level helper, the rest through createRecord.
const texts = []
const posts = []
for (let i = 0; i < 17; i++) {
  const text = `post ${i} from @atproto/api 🌊`
  texts.push(text)
  if (i < 3) {
    posts.push(await agent.post({ text, createdAt: new Date().toISOString() }))
  } else {
    const res = await agent.com.atproto.repo.createRecord({
      repo: did,
      collection: POST,
      record: { $type: POST, text, createdAt: new Date().toISOString() },
    })
    posts.push({ uri: res.data.uri, cid: res.data.cid })
  }
}
out.posts = posts.map((p, i) => ({ uri: p.uri, cid: p.cid, text: texts[i] }))

// Read each back.
out.read = []
for (const p of posts) {
  const rkey = p.uri.split('/').pop()
  const res = await agent.com.atproto.repo.getRecord({ repo: did, collection: POST, rkey })
  out.read.push({ uri: res.data.uri, cid: res.data.cid ?? null, text: res.data.value.text })
}

// Pagination: follow the cursor until the server stops giving one (or a page is empty).
const listAll = async (limit) => {
  const uris = []
  let cursor
  let pages = 0
  for (;;) {
    const res = await agent.com.atproto.repo.listRecords({ repo: did, collection: POST, limit, cursor })
    pages += 1
    if (res.data.records.length > limit) throw new Error(`page of ${res.data.records.length} > limit ${limit}`)
    uris.push(...res.data.records.map((r) => r.uri))
    if (!res.data.cursor || res.data.records.length === 0) return { uris, pages }
    if (pages > 100) throw new Error('listRecords never ran out of pages')
    cursor = res.data.cursor
  }
}
out.list = await listAll(4)

// Blob: upload, post with an image embed, read the post back.
const image = fs.readFileSync(imagePath)
const up = await agent.uploadBlob(image, { encoding: 'image/png' })
const blob = up.data.blob
out.blob = { cid: blob.ref.toString(), mimeType: blob.mimeType, size: blob.size }
const withImage = await agent.post({
  text: 'with a picture',
  createdAt: new Date().toISOString(),
  embed: { $type: 'app.bsky.embed.images', images: [{ image: blob, alt: 'random pixels' }] },
})
const imagePost = await agent.com.atproto.repo.getRecord({
  repo: did,
  collection: POST,
  rkey: withImage.uri.split('/').pop(),
})
const embedded = imagePost.data.value.embed.images[0]
out.imagePost = {
  uri: withImage.uri,
  alt: embedded.alt,
  blobCid: embedded.image.ref.toString(),
  mimeType: embedded.image.mimeType,
  size: embedded.image.size,
}
const fetched = await agent.com.atproto.sync.getBlob({ did, cid: out.blob.cid })
out.getBlob = { size: fetched.data.length, base64: Buffer.from(fetched.data).toString('base64') }

// Delete one post; reading it must then fail with RecordNotFound.
const victim = posts[5]
await agent.com.atproto.repo.deleteRecord({ repo: did, collection: POST, rkey: victim.uri.split('/').pop() })
out.deleted = victim.uri
try {
  await agent.com.atproto.repo.getRecord({ repo: did, collection: POST, rkey: victim.uri.split('/').pop() })
  out.afterDelete = { found: true }
} catch (err) {
  out.afterDelete = { found: false, error: err.error ?? null, status: err.status ?? null }
}
out.listAfterDelete = await listAll(50)

// Refresh: new tokens, and the agent keeps working with them.
const before = { access: agent.session.accessJwt, refresh: agent.session.refreshJwt }
const refreshed = await agent.sessionManager.refreshSession()
out.refresh = {
  did: refreshed.data.did,
  handle: refreshed.data.handle,
  accessChanged: agent.session.accessJwt !== before.access,
  refreshChanged: agent.session.refreshJwt !== before.refresh,
}
const session = await agent.com.atproto.server.getSession()
out.sessionAfterRefresh = { did: session.data.did, handle: session.data.handle }
const last = await agent.post({ text: 'after refresh', createdAt: new Date().toISOString() })
out.afterRefreshPost = last.uri

console.log(JSON.stringify(out))
