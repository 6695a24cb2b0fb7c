// A tool-calling round trip with the official OpenAI SDK, streamed and not.
// Env: TOLLGATE_BASE_URL, TOLLGATE_API_KEY, TOLLGATE_MODEL.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const client = new OpenAI({ apiKey: process.env.TOLLGATE_API_KEY, baseURL: `${process.env.TOLLGATE_BASE_URL}/v1`, maxRetries: 0 });
const model = process.env.TOLLGATE_MODEL;
const tools = [{
  type: 'function',
  function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
}];
const ask = [{ role: 'user', content: 'Weather in Paris?' }];

const first = await client.chat.completions.create({ model, tools, messages: ask });
assert.equal(first.choices[0].finish_reason, 'tool_calls', JSON.stringify(first));
const call = first.choices[0].message.tool_calls?.[0];
assert.equal(call?.function.name, 'get_weather');
assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });

const second = await client.chat.completions.create({
  model, tools,
  messages: [...ask, first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: 'sunny' }],
});
assert.match(second.choices[0].message.content, /sunny/, 'the tool result reached the provider');

// Streamed: the argument fragments concatenate to the same call.
const stream = await client.chat.completions.create({ model, tools, messages: ask, stream: true });
let name = '';
let args = '';
let finish = null;
for await (const chunk of stream) {
  for (const tc of chunk.choices[0]?.delta?.tool_calls ?? []) {
    name += tc.function?.name ?? '';
    args += tc.function?.arguments ?? '';
  }
  finish = chunk.choices[0]?.finish_reason ?? finish;
}
assert.equal(name, 'get_weather');
assert.deepEqual(JSON.parse(args), { city: 'Paris' });
assert.equal(finish, 'tool_calls');
