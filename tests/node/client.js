// A billing-svc client in Node.js: loads proto/ at run time (no generated code), creates an
// account and a tenant, streams usage, reads current usage, prints the result as JSON.
// Usage: node client.js <host:port> <admin token>
"use strict";
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO_ROOT = path.join(__dirname, "..", "..", "proto");
// google/api/annotations.proto, which the services import for their google.api.http options.
const VENDORED_ROOT = path.join(__dirname, "..", "..", "third_party", "googleapis");
const definition = protoLoader.loadSync(
  ["as2aas/billing/v1/billing_service.proto", "as2aas/billing/v1/usage_service.proto"],
  { includeDirs: [PROTO_ROOT, VENDORED_ROOT], keepCase: true, longs: String, enums: String, defaults: true },
);
const v1 = grpc.loadPackageDefinition(definition).as2aas.billing.v1;

const [target, token] = process.argv.slice(2);
const credentials = grpc.credentials.createInsecure();
const billing = new v1.BillingService(target, credentials);
const usage = new v1.UsageService(target, credentials);
const metadata = new grpc.Metadata();
metadata.set("authorization", `Bearer ${token}`);

const call = (client, method, request) =>
  new Promise((resolve, reject) =>
    client[method](request, metadata, (error, response) => (error ? reject(error) : resolve(response))));

async function main() {
  const { account } = await call(billing, "CreateAccount", {
    name: "Node Co", plan_id: "business", request_id: `node-${Date.now()}`,
  });
  const { tenant } = await call(billing, "CreateTenant", {
    account_id: account.account_id, name: "node-tenant",
  });
  const now = { seconds: String(Math.floor(Date.now() / 1000) - 5), nanos: 0 };
  const acks = await new Promise((resolve, reject) => {
    const received = [];
    const stream = usage.StreamUsage(metadata);
    stream.on("data", (ack) => received.push(ack));
    stream.on("error", reject);
    stream.on("end", () => resolve(received));
    for (let b = 0; b < 3; b += 1) {
      const events = [];
      for (let i = 0; i < 100; i += 1) {
        events.push({
          event_id: `node-${b}-${i}`, account_id: account.account_id,
          tenant_id: tenant.tenant_id, kind: "USAGE_KIND_MESSAGE", quantity: "2",
          occurred_at: now,
        });
      }
      stream.write({ batch_id: `node-batch-${b}`, events });
    }
    stream.end();
  });
  const current = await call(usage, "GetCurrentUsage", { account_id: account.account_id });
  console.log(JSON.stringify({
    account_id: account.account_id,
    acks: acks.map((a) => ({ batch_id: a.batch_id, accepted: a.accepted })),
    messages: current.usage_to_date.messages,
    active_tenants: current.usage_to_date.active_tenants,
    currency: current.usage_to_date.estimated_charges.currency_code,
  }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
