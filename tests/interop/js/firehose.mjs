// Consumes a PDS's com.atproto.sync.subscribeRepos with Bluesky's @atproto/sync Firehose, validation on:
// every frame is checked against the lexicon, and every commit's ops are proven against the signed commit
// (MST inclusion/exclusion proofs, signature with the key from the DID document in the PLC directory).
// Prints one JSON line per event it hands out and one per error; runs until SIGTERM/SIGINT or stdin closes.
//   node firehose.mjs <ws://pds> <plcUrl> [cursor]
import { IdResolver } from '@atproto/identity'
import { Firehose } from '@atproto/sync'

const [service, plcUrl, cursorArg] = process.argv.slice(2)
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`)

const describe = (err) => {
  const out = { name: err?.name ?? null, message: err?.message ?? String(err) }
  if (err?.cause !== undefined) out.cause = String(err.cause?.stack ?? err.cause)
  if (err?.event) out.event = { seq: err.event.seq ?? null, repo: err.event.repo ?? err.event.did ?? null }
  if (err?.value) out.value = { seq: err.value.seq ?? null, $type: err.value.$type ?? null }
  return out
}

let lastSeq
const firehose = new Firehose({
  service,
  // A local http:// directory: the documented opt-out of the SSRF-guarded default fetch is passing our own.
  idResolver: new IdResolver({ plcUrl, fetch: globalThis.fetch }),
  unauthenticatedCommits: false,
  // Handles under .test cannot be resolved by DNS or https well-known on loopback; commits stay verified.
  unauthenticatedHandles: true,
  // After a reconnect, resume after the last event seen rather than replaying from the first cursor.
  getCursor: async () => lastSeq ?? (cursorArg === undefined ? undefined : Number(cursorArg)),
  subscriptionReconnectDelay: 500,
  handleEvent: async (evt) => {
    lastSeq = evt.seq
    const base = { kind: evt.event, did: evt.did, seq: evt.seq, time: evt.time }
    if (evt.event === 'create' || evt.event === 'update' || evt.event === 'delete') {
      emit({
        ...base,
        rev: evt.rev,
        commit: evt.commit.toString(),
        path: `${evt.collection}/${evt.rkey}`,
        cid: evt.event === 'delete' ? null : evt.cid.toString(),
        text: evt.event === 'delete' ? null : (evt.record?.text ?? null),
      })
    } else if (evt.event === 'identity') {
      emit({ ...base, handle: evt.handle ?? null })
    } else if (evt.event === 'account') {
      emit({ ...base, active: evt.active, status: evt.status ?? null })
    } else if (evt.event === 'sync') {
      emit({ ...base, rev: evt.rev, commit: evt.cid.toString() })
    } else {
      emit({ ...base, kind: 'other', event: evt.event })
    }
  },
  onError: (err) => emit({ kind: 'error', ...describe(err) }),
})

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await firehose.destroy()
  emit({ kind: 'stopped' })
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.resume()

emit({ kind: 'started', service, cursor: cursorArg ?? null })
await firehose.start()
