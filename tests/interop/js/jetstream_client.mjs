// Subscribes to a Jetstream v1 /subscribe endpoint with the npm client @skyware/jetstream (unchanged) and
// prints one JSON line per event it hands out. Commands arrive as JSON lines on stdin:
//   {"updateOptions": {...}}  → jetstream.updateOptions(payload) (an options_update on the live socket)
//   {"close": true}           → close and exit
//   node jetstream_client.mjs <ws://host:port/subscribe> '<options JSON>'
// Needs a global WebSocket (Node >= 22), as the package expects.
import { createInterface } from 'node:readline'
import { Jetstream } from '@skyware/jetstream'

const [endpoint, optionsJson] = process.argv.slice(2)
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`)

const jetstream = new Jetstream({ endpoint, ...JSON.parse(optionsJson ?? '{}') })
jetstream.on('open', () => emit({ type: 'open' }))
jetstream.on('close', () => emit({ type: 'close' }))
jetstream.on('error', (err, cursor) => emit({ type: 'error', message: String(err?.message ?? err), cursor }))
jetstream.on('commit', (event) => {
  const { commit } = event
  emit({
    type: 'commit',
    did: event.did,
    time_us: event.time_us,
    operation: commit.operation,
    collection: commit.collection,
    rkey: commit.rkey,
    cid: commit.cid ?? null,
    text: commit.record?.text ?? null,
  })
})
jetstream.on('identity', (event) => emit({ type: 'identity', did: event.did, handle: event.identity.handle ?? null }))
jetstream.on('account', (event) => emit({ type: 'account', did: event.did, active: event.account.active }))

const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  const cmd = JSON.parse(line)
  if (cmd.updateOptions) {
    jetstream.updateOptions(cmd.updateOptions)
    emit({ type: 'updated' })
  } else if (cmd.close) {
    jetstream.close()
    process.exit(0)
  }
})
rl.on('close', () => {
  jetstream.close()
  process.exit(0)
})
jetstream.start()
