package gemini

import "encoding/json"

// Wire types of the Gemini API (https://ai.google.dev/api/generate-content and
// https://ai.google.dev/api/caching#Content). Request-side types keep the fields they do not
// model in Extra, keyed by camelCase name, and forward them unchanged; see wire.go.

// Content is one turn of a conversation, or the system instruction.
type Content struct {
	Role  string                     `json:"role,omitempty"` // "user" | "model"; empty means user
	Parts []Part                     `json:"parts"`
	Extra map[string]json.RawMessage `json:"-"`
}

// Part is one piece of a Content: exactly one of the data fields is set.
type Part struct {
	Text             *string           `json:"text,omitempty"`
	Thought          bool              `json:"thought,omitempty"` // Text is the model's reasoning
	ThoughtSignature string            `json:"thoughtSignature,omitempty"`
	InlineData       *Blob             `json:"inlineData,omitempty"`
	FileData         *FileData         `json:"fileData,omitempty"`
	FunctionCall     *FunctionCall     `json:"functionCall,omitempty"`
	FunctionResponse *FunctionResponse `json:"functionResponse,omitempty"`
	// Extra holds executableCode, codeExecutionResult, videoMetadata, ….
	Extra map[string]json.RawMessage `json:"-"`
}

// Blob is inline media: Data is base64.
type Blob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

// FileData references media by URI (a Files API URI or, for some models, a public URL).
type FileData struct {
	MimeType string `json:"mimeType,omitempty"`
	FileURI  string `json:"fileUri"`
}

// FunctionCall is a call the model made. Args is a JSON object.
type FunctionCall struct {
	ID    string                     `json:"id,omitempty"`
	Name  string                     `json:"name"`
	Args  json.RawMessage            `json:"args,omitempty"`
	Extra map[string]json.RawMessage `json:"-"`
}

// FunctionResponse is a function's result sent back to the model. Response is a JSON object.
type FunctionResponse struct {
	ID       string                     `json:"id,omitempty"`
	Name     string                     `json:"name"`
	Response json.RawMessage            `json:"response"`
	Extra    map[string]json.RawMessage `json:"-"`
}

// GenerationConfig is generationConfig. TopK is a number because Vertex-era SDKs send a float.
type GenerationConfig struct {
	Temperature        *float64                   `json:"temperature,omitempty"`
	TopP               *float64                   `json:"topP,omitempty"`
	TopK               *float64                   `json:"topK,omitempty"`
	MaxOutputTokens    *int64                     `json:"maxOutputTokens,omitempty"`
	StopSequences      []string                   `json:"stopSequences,omitempty"`
	CandidateCount     *int64                     `json:"candidateCount,omitempty"`
	ResponseMimeType   string                     `json:"responseMimeType,omitempty"`
	ResponseSchema     json.RawMessage            `json:"responseSchema,omitempty"`     // OpenAPI-subset Schema
	ResponseJSONSchema json.RawMessage            `json:"responseJsonSchema,omitempty"` // JSON Schema
	Seed               *int64                     `json:"seed,omitempty"`
	PresencePenalty    *float64                   `json:"presencePenalty,omitempty"`
	FrequencyPenalty   *float64                   `json:"frequencyPenalty,omitempty"`
	ThinkingConfig     *ThinkingConfig            `json:"thinkingConfig,omitempty"`
	Extra              map[string]json.RawMessage `json:"-"`
}

// ThinkingConfig is generationConfig.thinkingConfig.
type ThinkingConfig struct {
	IncludeThoughts *bool                      `json:"includeThoughts,omitempty"`
	ThinkingBudget  *int64                     `json:"thinkingBudget,omitempty"`
	ThinkingLevel   string                     `json:"thinkingLevel,omitempty"`
	Extra           map[string]json.RawMessage `json:"-"`
}

// Tool is one entry of tools. Only function declarations are modelled; googleSearch,
// codeExecution, urlContext, … stay in Extra.
type Tool struct {
	FunctionDeclarations []FunctionDeclaration      `json:"functionDeclarations,omitempty"`
	Extra                map[string]json.RawMessage `json:"-"`
}

// FunctionDeclaration declares a function. Parameters is an OpenAPI-subset Schema,
// ParametersJSONSchema a JSON Schema; at most one is set.
type FunctionDeclaration struct {
	Name                 string                     `json:"name"`
	Description          string                     `json:"description,omitempty"`
	Parameters           json.RawMessage            `json:"parameters,omitempty"`
	ParametersJSONSchema json.RawMessage            `json:"parametersJsonSchema,omitempty"`
	Extra                map[string]json.RawMessage `json:"-"`
}

// ToolConfig is toolConfig.
type ToolConfig struct {
	FunctionCallingConfig *FunctionCallingConfig     `json:"functionCallingConfig,omitempty"`
	Extra                 map[string]json.RawMessage `json:"-"`
}

// FunctionCallingConfig is toolConfig.functionCallingConfig.
type FunctionCallingConfig struct {
	Mode                 string                     `json:"mode,omitempty"` // AUTO | ANY | NONE | VALIDATED
	AllowedFunctionNames []string                   `json:"allowedFunctionNames,omitempty"`
	Extra                map[string]json.RawMessage `json:"-"`
}

// Function-calling modes.
const (
	ModeAuto      = "AUTO"
	ModeAny       = "ANY"
	ModeNone      = "NONE"
	ModeValidated = "VALIDATED"
)

// GenerateContentResponse is a response, and each frame of a stream.
type GenerateContentResponse struct {
	Candidates     []Candidate     `json:"candidates,omitempty"`
	PromptFeedback *PromptFeedback `json:"promptFeedback,omitempty"`
	UsageMetadata  *UsageMetadata  `json:"usageMetadata,omitempty"`
	ModelVersion   string          `json:"modelVersion,omitempty"`
	ResponseID     string          `json:"responseId,omitempty"`
}

// Candidate is one generated answer (the gateway allows one).
type Candidate struct {
	Content      *Content `json:"content,omitempty"`
	FinishReason string   `json:"finishReason,omitempty"`
	Index        int      `json:"index"`
}

// PromptFeedback reports a prompt the model refused to answer.
type PromptFeedback struct {
	BlockReason string `json:"blockReason,omitempty"`
}

// UsageMetadata counts tokens. PromptTokenCount includes CachedContentTokenCount;
// CandidatesTokenCount excludes ThoughtsTokenCount.
type UsageMetadata struct {
	PromptTokenCount        int64 `json:"promptTokenCount"`
	CandidatesTokenCount    int64 `json:"candidatesTokenCount"`
	TotalTokenCount         int64 `json:"totalTokenCount"`
	CachedContentTokenCount int64 `json:"cachedContentTokenCount,omitempty"`
	ThoughtsTokenCount      int64 `json:"thoughtsTokenCount,omitempty"`
	ToolUsePromptTokenCount int64 `json:"toolUsePromptTokenCount,omitempty"`
}

// Finish reasons (https://ai.google.dev/api/generate-content#FinishReason).
const (
	FinishStop      = "STOP"
	FinishMaxTokens = "MAX_TOKENS"
	FinishSafety    = "SAFETY"
	FinishOther     = "OTHER"
)

// The JSON methods below route every request-side type through decodeObject/encodeObject.

func (c *Content) UnmarshalJSON(b []byte) (err error) {
	type plain Content
	c.Extra, err = decodeObject(b, (*plain)(c))
	return err
}

func (c Content) MarshalJSON() ([]byte, error) {
	type plain Content
	return encodeObject(plain(c), c.Extra)
}

func (p *Part) UnmarshalJSON(b []byte) (err error) {
	type plain Part
	p.Extra, err = decodeObject(b, (*plain)(p))
	return err
}

func (p Part) MarshalJSON() ([]byte, error) {
	type plain Part
	return encodeObject(plain(p), p.Extra)
}

func (f *FunctionCall) UnmarshalJSON(b []byte) (err error) {
	type plain FunctionCall
	f.Extra, err = decodeObject(b, (*plain)(f))
	return err
}

func (f FunctionCall) MarshalJSON() ([]byte, error) {
	type plain FunctionCall
	return encodeObject(plain(f), f.Extra)
}

func (f *FunctionResponse) UnmarshalJSON(b []byte) (err error) {
	type plain FunctionResponse
	f.Extra, err = decodeObject(b, (*plain)(f))
	return err
}

func (f FunctionResponse) MarshalJSON() ([]byte, error) {
	type plain FunctionResponse
	return encodeObject(plain(f), f.Extra)
}

func (b *Blob) UnmarshalJSON(data []byte) error {
	type plain Blob
	_, err := decodeObject(data, (*plain)(b)) // Blob has no other fields worth keeping
	return err
}

func (f *FileData) UnmarshalJSON(data []byte) error {
	type plain FileData
	_, err := decodeObject(data, (*plain)(f))
	return err
}

func (g *GenerationConfig) UnmarshalJSON(b []byte) (err error) {
	type plain GenerationConfig
	g.Extra, err = decodeObject(b, (*plain)(g))
	return err
}

func (g GenerationConfig) MarshalJSON() ([]byte, error) {
	type plain GenerationConfig
	return encodeObject(plain(g), g.Extra)
}

func (t *ThinkingConfig) UnmarshalJSON(b []byte) (err error) {
	type plain ThinkingConfig
	t.Extra, err = decodeObject(b, (*plain)(t))
	return err
}

func (t ThinkingConfig) MarshalJSON() ([]byte, error) {
	type plain ThinkingConfig
	return encodeObject(plain(t), t.Extra)
}

func (t *Tool) UnmarshalJSON(b []byte) (err error) {
	type plain Tool
	t.Extra, err = decodeObject(b, (*plain)(t))
	return err
}

func (t Tool) MarshalJSON() ([]byte, error) {
	type plain Tool
	return encodeObject(plain(t), t.Extra)
}

func (f *FunctionDeclaration) UnmarshalJSON(b []byte) (err error) {
	type plain FunctionDeclaration
	f.Extra, err = decodeObject(b, (*plain)(f))
	return err
}

func (f FunctionDeclaration) MarshalJSON() ([]byte, error) {
	type plain FunctionDeclaration
	return encodeObject(plain(f), f.Extra)
}

func (t *ToolConfig) UnmarshalJSON(b []byte) (err error) {
	type plain ToolConfig
	t.Extra, err = decodeObject(b, (*plain)(t))
	return err
}

func (t ToolConfig) MarshalJSON() ([]byte, error) {
	type plain ToolConfig
	return encodeObject(plain(t), t.Extra)
}

func (f *FunctionCallingConfig) UnmarshalJSON(b []byte) (err error) {
	type plain FunctionCallingConfig
	f.Extra, err = decodeObject(b, (*plain)(f))
	return err
}

func (f FunctionCallingConfig) MarshalJSON() ([]byte, error) {
	type plain FunctionCallingConfig
	return encodeObject(plain(f), f.Extra)
}
