// Sends one story through the official, unmodified Segment Node client to a Rapport server.
// Usage: node segment_node.mjs BASE_URL WRITE_KEY
import { Analytics } from '@segment/analytics-node'

const [base, writeKey] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host: base, flushAt: 20, flushInterval: 200, maxRetries: 1 })
const errors = []
analytics.on('error', (error) => errors.push(String(error?.reason ?? error?.message ?? error)))

analytics.page({ anonymousId: 'node-anon-1', name: 'Home', properties: { url: 'https://rapport.example/', path: '/' }, messageId: 'node-page-1' })
analytics.track({ anonymousId: 'node-anon-1', event: 'Webinar Registered', properties: { webinar: '制造业数字化' }, messageId: 'node-track-1' })
analytics.identify({ userId: 'node-user-1', anonymousId: 'node-anon-1', traits: { email: 'node.user@example.com', name: '王小明', city: '深圳' }, messageId: 'node-identify-1' })
analytics.screen({ userId: 'node-user-1', name: 'Dashboard', messageId: 'node-screen-1' })
analytics.group({ userId: 'node-user-1', groupId: 'node-company-1', traits: { name: 'Node 科技', industry: '软件' }, messageId: 'node-group-1' })
analytics.alias({ previousId: 'node-anon-2', userId: 'node-user-1', messageId: 'node-alias-1' })
await analytics.closeAndFlush({ timeout: 10000 })

if (errors.length > 0) {
  console.error('errors: ' + errors.join('; '))
  process.exit(1)
}
console.log('sent')
