// Drives the gateway with the official Anthropic SDK against every provider kind, streaming and
// not, plus a tool-calling round trip. Prints a JSON summary of request ids on stdout.
//
// Env: TOLLGATE_BASE_URL, TOLLGATE_API_KEY, TOLLGATE_MODELS (comma-separated), TOLLGATE_TOOL_MODEL.
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';

const client = new Anthropic({
  apiKey: process.env.TOLLGATE_API_KEY,
  baseURL: process.env.TOLLGATE_BASE_URL,
  maxRetries: 0,
  timeout: 30_000,
});
const models = process.env.TOLLGATE_MODELS.split(',');
const summary = { requests: [] };

for (const model of models) {
  // Non-streaming.
  const { data: msg, request_id } = await client.messages
    .create({
      model,
      max_tokens: 200,
      system: 'You are terse.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Say hello to the gateway' }] }],
    })
    .withResponse();
  assert.equal(msg.type, 'message');
  assert.equal(msg.role, 'assistant');
  assert.equal(msg.model, model, 'the canonical model');
  assert.equal(msg.content[0].type, 'text');
  assert.match(msg.content[0].text, /Say hello to the gateway/, `${model}: the prompt reached the provider`);
  assert.equal(msg.stop_reason, 'end_turn');
  assert.ok(msg.usage.input_tokens > 0 && msg.usage.output_tokens > 0, `${model}: usage ${JSON.stringify(msg.usage)}`);
  summary.requests.push({ model, request_id, streamed: false });

  // Streaming: the SDK assembles the final message from the events.
  const stream = client.messages.stream({
    model,
    max_tokens: 200,
    messages: [{ role: 'user', content: 'Say hello to the gateway' }],
  });
  let text = '';
  stream.on('text', (t) => { text += t; });
  const final = await stream.finalMessage();
  assert.equal(text, msg.content[0].text, `${model}: streamed text equals the non-streamed text`);
  assert.equal(final.content[0].text, text);
  assert.equal(final.stop_reason, 'end_turn');
  assert.ok(final.usage.output_tokens > 0, `${model}: streamed usage ${JSON.stringify(final.usage)}`);
  summary.requests.push({ model, request_id: stream.request_id ?? null, streamed: true });
}

// Tool calling round trip.
{
  const model = process.env.TOLLGATE_TOOL_MODEL;
  const tools = [{
    name: 'get_weather',
    description: 'Weather for a city',
    input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  }];
  const first = await client.messages.create({
    model, max_tokens: 200, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }],
  });
  assert.equal(first.stop_reason, 'tool_use');
  const call = first.content.find((b) => b.type === 'tool_use');
  assert.ok(call, `a tool_use block: ${JSON.stringify(first.content)}`);
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(call.input, { city: 'Paris' });
  const second = await client.messages.create({
    model, max_tokens: 200, tools,
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'sunny' }] },
    ],
  });
  assert.match(second.content[0].text, /sunny/, 'the tool result reached the provider');

  // The same call streamed: the SDK rebuilds the tool input from input_json_delta events.
  const s = client.messages.stream({ model, max_tokens: 200, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }] });
  const streamed = await s.finalMessage();
  const sc = streamed.content.find((b) => b.type === 'tool_use');
  assert.ok(sc, `streamed tool_use: ${JSON.stringify(streamed.content)}`);
  assert.deepEqual(sc.input, { city: 'Paris' });
}

// The model list, in Anthropic's shape.
{
  const ids = [];
  for await (const m of client.models.list()) {
    assert.equal(m.type, 'model');
    ids.push(m.id);
  }
  for (const model of models) assert.ok(ids.includes(model), `models.list() includes ${model}: ${ids}`);
}

// A bad key, and an unknown model, in Anthropic's error classes.
{
  const bad = new Anthropic({ apiKey: 'tg_wrong', baseURL: process.env.TOLLGATE_BASE_URL, maxRetries: 0 });
  await assert.rejects(bad.messages.create({ model: models[0], max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }),
    (err) => err instanceof Anthropic.AuthenticationError && err.status === 401);
  await assert.rejects(client.messages.create({ model: 'no-such-model', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }),
    (err) => err instanceof Anthropic.NotFoundError && err.error?.type === 'error' && err.error?.error?.type === 'not_found_error');
}

process.stdout.write(JSON.stringify(summary));
