// Counts tokens through the gateway with the official SDKs: Anthropic's messages.countTokens and
// @google/genai's models.countTokens, once per model. Prints a JSON summary on stdout: each
// count, and whether the gateway marked it as its own estimate (x-tollgate-estimated).
//
// Env: TOLLGATE_BASE_URL, TOLLGATE_API_KEY, TOLLGATE_MODELS (comma-separated).
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';

const client = new Anthropic({
  apiKey: process.env.TOLLGATE_API_KEY,
  baseURL: process.env.TOLLGATE_BASE_URL,
  maxRetries: 0,
  timeout: 30_000,
});
const ai = new GoogleGenAI({
  apiKey: process.env.TOLLGATE_API_KEY,
  httpOptions: { baseUrl: process.env.TOLLGATE_BASE_URL, apiVersion: 'v1beta', timeout: 30_000 },
});
const models = process.env.TOLLGATE_MODELS.split(',');
const summary = { anthropic: [], gemini: [] };

const header = (h, name) => (typeof h?.get === 'function' ? h.get(name) : h?.[name]) ?? null;

for (const model of models) {
  const { data, response } = await client.messages
    .countTokens({
      model,
      system: 'You are terse.',
      messages: [{ role: 'user', content: 'Say hello to the gateway' }],
    })
    .withResponse();
  assert.equal(typeof data.input_tokens, 'number', `${model}: ${JSON.stringify(data)}`);
  summary.anthropic.push({ model, tokens: data.input_tokens, estimated: header(response.headers, 'x-tollgate-estimated') === 'true' });

  const r = await ai.models.countTokens({
    model,
    contents: [{ role: 'user', parts: [{ text: 'Say hello to the gateway' }] }],
  });
  assert.equal(typeof r.totalTokens, 'number', `${model}: ${JSON.stringify(r)}`);
  summary.gemini.push({ model, tokens: r.totalTokens, estimated: header(r.sdkHttpResponse?.headers, 'x-tollgate-estimated') === 'true' });
}

console.log(JSON.stringify(summary));
