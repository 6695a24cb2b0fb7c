package spool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
)

// Record operations.
const (
	opSettle  = "settle"
	opRelease = "release"
	opApplied = "applied"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is one line of the spool.
type record struct {
	Seq       uint64     `json:"seq,omitempty"`
	Op        string     `json:"op"`
	Usage     *usageJSON `json:"usage,omitempty"`
	RequestID string     `json:"request_id,omitempty"`
	Upto      uint64     `json:"upto,omitempty"`
}

// usageJSON is ledger.Usage as spooled. It has its own tags so that renaming a field of
// ledger.Usage cannot silently change the meaning of records already on disk.
type usageJSON struct {
	RequestID        string           `json:"request_id"`
	OrgID            string           `json:"org_id"`
	KeyID            string           `json:"key_id,omitempty"`
	Endpoint         string           `json:"endpoint,omitempty"`
	RequestedModel   string           `json:"requested_model,omitempty"`
	Model            string           `json:"model,omitempty"`
	Provider         string           `json:"provider,omitempty"`
	Region           string           `json:"region,omitempty"`
	Status           int              `json:"status"`
	FinishReason     string           `json:"finish_reason,omitempty"`
	Streamed         bool             `json:"streamed,omitempty"`
	PromptTokens     int64            `json:"prompt_tokens,omitempty"`
	CompletionTokens int64            `json:"completion_tokens,omitempty"`
	CachedReadTokens int64            `json:"cached_read_tokens,omitempty"`
	CacheWriteTokens int64            `json:"cache_write_tokens,omitempty"`
	ReasoningTokens  int64            `json:"reasoning_tokens,omitempty"`
	CostMicros       int64            `json:"cost_micros"`
	ExcessMicros     int64            `json:"excess_micros,omitempty"`
	CostItems        map[string]int64 `json:"cost_items,omitempty"`
	LatencyNs        int64            `json:"latency_ns,omitempty"`
	TTFTNs           int64            `json:"ttft_ns,omitempty"`
	CreatedAt        time.Time        `json:"created_at"`
	Attempts         []ledger.Attempt `json:"attempts,omitempty"`
}

func toJSON(u ledger.Usage) *usageJSON {
	return &usageJSON{
		RequestID: u.RequestID, OrgID: u.OrgID, KeyID: u.KeyID, Endpoint: u.Endpoint,
		RequestedModel: u.RequestedModel, Model: u.Model, Provider: u.Provider, Region: u.Region,
		Status: u.Status, FinishReason: u.FinishReason, Streamed: u.Streamed,
		PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens,
		CachedReadTokens: u.CachedReadTokens, CacheWriteTokens: u.CacheWriteTokens, ReasoningTokens: u.ReasoningTokens,
		CostMicros: u.CostMicros, ExcessMicros: u.ExcessMicros, CostItems: u.CostItems,
		LatencyNs: int64(u.Latency), TTFTNs: int64(u.TimeToFirstToken), CreatedAt: u.CreatedAt,
		Attempts: u.Attempts,
	}
}

func (j *usageJSON) usage() ledger.Usage {
	return ledger.Usage{
		RequestID: j.RequestID, OrgID: j.OrgID, KeyID: j.KeyID, Endpoint: j.Endpoint,
		RequestedModel: j.RequestedModel, Model: j.Model, Provider: j.Provider, Region: j.Region,
		Status: j.Status, FinishReason: j.FinishReason, Streamed: j.Streamed,
		PromptTokens: j.PromptTokens, CompletionTokens: j.CompletionTokens,
		CachedReadTokens: j.CachedReadTokens, CacheWriteTokens: j.CacheWriteTokens, ReasoningTokens: j.ReasoningTokens,
		CostMicros: j.CostMicros, ExcessMicros: j.ExcessMicros, CostItems: j.CostItems,
		Latency: time.Duration(j.LatencyNs), TimeToFirstToken: time.Duration(j.TTFTNs), CreatedAt: j.CreatedAt,
		Attempts: j.Attempts,
	}
}

// encodeLine frames r as one spool line: CRC, space, JSON, newline.
func encodeLine(r record) ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode spool record: %w", err)
	}
	line := make([]byte, 0, len(js)+10)
	line = fmt.Appendf(line, "%08x ", crc32.Checksum(js, castagnoli))
	line = append(line, js...)
	return append(line, '\n'), nil
}

var (
	errTorn    = errors.New("torn record")
	errCorrupt = errors.New("corrupt record")
)

// decodeLine parses one line, newline included. A line without its newline is errTorn; a
// line whose CRC or JSON is wrong is errCorrupt.
func decodeLine(line []byte) (record, error) {
	if len(line) == 0 || line[len(line)-1] != '\n' {
		return record{}, errTorn
	}
	line = line[:len(line)-1]
	if len(line) < 10 || line[8] != ' ' {
		return record{}, errCorrupt
	}
	want, err := strconv.ParseUint(string(line[:8]), 16, 32)
	if err != nil {
		return record{}, errCorrupt
	}
	js := line[9:]
	if crc32.Checksum(js, castagnoli) != uint32(want) {
		return record{}, errCorrupt
	}
	var r record
	dec := json.NewDecoder(bytes.NewReader(js))
	if err := dec.Decode(&r); err != nil {
		return record{}, errCorrupt
	}
	switch {
	case r.Op == opSettle && r.Usage != nil && r.Seq > 0,
		r.Op == opRelease && r.RequestID != "" && r.Seq > 0,
		r.Op == opApplied:
		return r, nil
	}
	return record{}, errCorrupt
}
