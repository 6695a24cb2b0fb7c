// Drives the gateway with the official OpenAI SDK, asserting what an application would rely on.
// Prints a JSON summary (request ids, usage) on stdout for the Go test to check against Postgres.
//
// Env: TOLLGATE_BASE_URL (e.g. http://127.0.0.1:8080), TOLLGATE_API_KEY, TOLLGATE_MODEL.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const base = process.env.TOLLGATE_BASE_URL;
const apiKey = process.env.TOLLGATE_API_KEY;
const model = process.env.TOLLGATE_MODEL ?? 'mock-gpt';
const client = new OpenAI({ apiKey, baseURL: `${base}/v1`, maxRetries: 0, timeout: 30_000 });
const summary = {};
const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: [{ type: 'text', text: 'Say hello ' }, { type: 'text', text: 'to the gateway' }] },
];

// A non-streaming completion.
{
  const { data, request_id } = await client.chat.completions.create({ model, messages }).withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.model, model, 'the response names the canonical model');
  assert.equal(data.choices.length, 1);
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.match(data.choices[0].message.content, /Say hello to the gateway/, 'text parts were flattened and reached the provider');
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.ok(data.usage.prompt_tokens > 0 && data.usage.completion_tokens > 0);
  assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
  assert.match(request_id, /^req_/);
  summary.plain = { request_id, text: data.choices[0].message.content, usage: data.usage };
}

// A streaming completion that asks for usage: the chunks concatenate to the same text and the
// last chunk carries usage.
{
  const { data: stream, request_id } = await client.chat.completions
    .create({ model, messages, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  let text = '';
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.equal(chunk.model, model);
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, [], 'the usage chunk has no choices');
  assert.ok(last.usage && last.usage.completion_tokens > 0, 'the final chunk carries usage');
  assert.ok(chunks.slice(0, -1).every((c) => c.usage == null), 'only the final chunk carries usage');
  assert.equal(text, summary.plain.text, 'streamed text equals the non-streamed text');
  summary.streamUsage = { request_id, usage: last.usage, chunks: chunks.length };
}

// A streaming completion that does not ask for usage: the gateway meters it anyway, but the
// client sees no usage chunk.
{
  const { data: stream, request_id } = await client.chat.completions
    .create({ model, messages, stream: true })
    .withResponse();
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    assert.ok(!('usage' in chunk) || chunk.usage == null, 'no usage when not asked for');
    assert.ok(chunk.choices.length > 0, 'no usage-only chunk when not asked for');
    text += chunk.choices[0].delta?.content ?? '';
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(text, summary.plain.text);
  assert.equal(finish, 'stop');
  summary.streamNoUsage = { request_id };
}

// The same API under seed 000's /v1/gateway base path, with an eu/ model id.
if (!process.env.TOLLGATE_SKIP_EU) {
  const gw = new OpenAI({ apiKey, baseURL: `${base}/v1/gateway`, maxRetries: 0 });
  const { data, request_id } = await gw.chat.completions
    .create({ model: `eu/${model}`, messages: [{ role: 'user', content: 'EU please' }] })
    .withResponse();
  assert.equal(data.model, model, 'eu/ ids answer with the canonical model');
  summary.eu = { request_id };
}

// The model list.
{
  const ids = [];
  for await (const m of client.models.list()) {
    assert.equal(m.object, 'model');
    ids.push(m.id);
  }
  assert.ok(ids.includes(model), `models.list() includes ${model}: ${ids}`);
  if (!process.env.TOLLGATE_SKIP_EU) {
    assert.ok(ids.includes(`eu/${model}`), `models.list() includes eu/${model}: ${ids}`);
  }
  const one = await client.models.retrieve(model);
  assert.equal(one.id, model);
  summary.models = ids;
}

// A bad key: the SDK raises its AuthenticationError with the gateway's code.
{
  const bad = new OpenAI({ apiKey: 'tg_not_a_real_key', baseURL: `${base}/v1`, maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create({ model, messages }), (err) => {
    assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}`);
    assert.equal(err.status, 401);
    assert.equal(err.code, 'auth_invalid');
    assert.match(err.requestID ?? '', /^req_/);
    return true;
  });
}

// Validation errors reach the SDK as BadRequestError naming the parameter.
{
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], n: 2 }),
    (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError);
      assert.equal(err.code, 'invalid_params');
      assert.equal(err.param, 'n');
      return true;
    },
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (err) => err instanceof OpenAI.NotFoundError && err.code === 'invalid_model',
  );
}

process.stdout.write(JSON.stringify(summary));
