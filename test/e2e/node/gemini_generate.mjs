// Drives the gateway with the official @google/genai SDK against every provider kind, streaming
// and not. Prints a JSON summary on stdout.
//
// Env: TOLLGATE_BASE_URL, TOLLGATE_API_KEY, TOLLGATE_MODELS (comma-separated).
import assert from 'node:assert/strict';
import { GoogleGenAI } from '@google/genai';

const ai = new GoogleGenAI({
  apiKey: process.env.TOLLGATE_API_KEY,
  httpOptions: { baseUrl: process.env.TOLLGATE_BASE_URL, apiVersion: 'v1beta', timeout: 30_000 },
});
const models = process.env.TOLLGATE_MODELS.split(',');
const summary = { requests: [] };

for (const model of models) {
  const r = await ai.models.generateContent({
    model,
    contents: [{ role: 'user', parts: [{ text: 'Say hello ' }, { text: 'to the gateway' }] }],
    config: { systemInstruction: 'You are terse.', temperature: 0.5, maxOutputTokens: 200 },
  });
  assert.match(r.text, /Say hello to the gateway/, `${model}: the prompt reached the provider: ${JSON.stringify(r)}`);
  assert.equal(r.candidates[0].finishReason, 'STOP');
  assert.equal(r.modelVersion, model, 'the canonical model');
  assert.ok(r.usageMetadata.promptTokenCount > 0 && r.usageMetadata.candidatesTokenCount > 0, JSON.stringify(r.usageMetadata));
  summary.requests.push({ model, streamed: false });

  const stream = await ai.models.generateContentStream({
    model,
    contents: [{ role: 'user', parts: [{ text: 'Say hello to the gateway' }] }],
  });
  let text = '';
  let last;
  for await (const chunk of stream) {
    text += chunk.text ?? '';
    last = chunk;
  }
  assert.equal(text, r.text, `${model}: streamed text equals the non-streamed text`);
  assert.equal(last.candidates[0].finishReason, 'STOP');
  assert.ok(last.usageMetadata?.candidatesTokenCount > 0, `${model}: final usage ${JSON.stringify(last.usageMetadata)}`);
  summary.requests.push({ model, streamed: true });
}

// Function calling, non-streamed.
{
  const model = models[0];
  const r = await ai.models.generateContent({
    model,
    contents: 'Weather in Paris?',
    config: { tools: [{ functionDeclarations: [{ name: 'get_weather', description: 'Weather', parameters: { type: 'OBJECT', properties: { city: { type: 'STRING' } } } }] }] },
  });
  assert.equal(r.functionCalls?.[0]?.name, 'get_weather', JSON.stringify(r));
  assert.deepEqual(r.functionCalls[0].args, { city: 'Paris' });
}

// The model list, in the Gemini API's shape.
{
  const names = [];
  for await (const m of await ai.models.list()) names.push(m.name);
  for (const model of models) assert.ok(names.includes(`models/${model}`), `models.list() includes ${model}: ${names}`);
}

// A bad key.
{
  const bad = new GoogleGenAI({ apiKey: 'tg_wrong', httpOptions: { baseUrl: process.env.TOLLGATE_BASE_URL, apiVersion: 'v1beta' } });
  await assert.rejects(bad.models.generateContent({ model: models[0], contents: 'x' }), (err) => err.status === 401);
}

process.stdout.write(JSON.stringify(summary));
