// The seed's budget check ("Cost Management > Usage Monitoring" in the seed's Billing & Usage
// page), run against a real billing-svc by tests/integration/test_seed_budget_check.py.
// checkDailyUsage below is the seed's code unchanged but for its base URL; DAILY_BUDGET_LIMIT and
// sendBudgetAlert are the two names the seed leaves to its reader.
// Usage: node check_daily_usage.js <base URL> <API key> <daily budget limit>
// Prints {"alerts": [...], "usage": <the response>} as JSON.
"use strict";

const [BASE_URL, API_KEY, LIMIT] = process.argv.slice(2);
const DAILY_BUDGET_LIMIT = Number(LIMIT);
const alerts = [];

async function sendBudgetAlert(usage) {
  alerts.push({ estimated_charges: usage.usage_to_date.estimated_charges, limit: DAILY_BUDGET_LIMIT });
}

// Monitor daily usage
async function checkDailyUsage(apiKey) {
  const response = await fetch(BASE_URL + '/v1/billing/usage/current', {
    headers: {
      'Authorization': `Bearer ${apiKey}`
    }
  });
  
  const usage = await response.json();
  
  if (usage.usage_to_date.estimated_charges > DAILY_BUDGET_LIMIT) {
    await sendBudgetAlert(usage);
  }
  
  return usage;
}

checkDailyUsage(API_KEY).then(
  (usage) => console.log(JSON.stringify({ alerts, usage })),
  (error) => { console.error(error); process.exit(1); },
);
