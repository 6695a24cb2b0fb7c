// Cross-provider fallback seen through the official SDKs: the requested model's only backend
// fails, a fallback of another provider kind serves, and each SDK gets its own protocol back,
// naming the model that served.
// Env: TOLLGATE_BASE_URL, TOLLGATE_API_KEY, TOLLGATE_MODEL (primary), TOLLGATE_SERVED (fallback).
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const base = process.env.TOLLGATE_BASE_URL;
const apiKey = process.env.TOLLGATE_API_KEY;
const model = process.env.TOLLGATE_MODEL;
const served = process.env.TOLLGATE_SERVED;

const openai = new OpenAI({ apiKey, baseURL: `${base}/v1`, maxRetries: 0 });

// A backend that answers 503 twice, then 200: Envoy retries it on the same level; the SDK sees
// one success (it does no retrying of its own: maxRetries 0).
if (process.env.TOLLGATE_FLAKY) {
  const data = await openai.chat.completions.create({ model: process.env.TOLLGATE_FLAKY, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(data.model, process.env.TOLLGATE_FLAKY);
  assert.match(data.choices[0].message.content, /You said: hi/);
}

// A primary that cannot be reached, whose fallback's upstream model name is longer: the body the
// fallback gets is complete (content-length set anew for the attempt).
if (process.env.TOLLGATE_DEAD_FIRST) {
  const data = await openai.chat.completions.create({ model: process.env.TOLLGATE_DEAD_FIRST, messages: [{ role: 'user', content: 'hi' }] });
  assert.match(data.choices[0].message.content, /You said: hi/);
}
{
  const { data, response } = await openai.chat.completions
    .create({ model, messages: [{ role: 'user', content: 'hi' }] })
    .withResponse();
  assert.equal(data.model, served, 'the response names the model that served');
  assert.equal(response.headers.get('x-tollgate-served-model'), served);
  assert.match(data.choices[0].message.content, /You said: hi/);
}
{
  const stream = await openai.chat.completions.create({
    model, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }],
  });
  let text = '';
  let usage;
  for await (const chunk of stream) {
    assert.equal(chunk.model, served);
    text += chunk.choices[0]?.delta?.content ?? '';
    usage = chunk.usage ?? usage;
  }
  assert.match(text, /You said: hi/);
  assert.ok(usage?.completion_tokens > 0, 'usage arrives at the end of a fallback stream');
}
{
  const anthropic = new Anthropic({ apiKey, baseURL: base, maxRetries: 0 });
  const final = await anthropic.messages
    .stream({ model, max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] })
    .finalMessage();
  assert.equal(final.model, served);
  assert.match(final.content[0].text, /You said: hi/);
}
