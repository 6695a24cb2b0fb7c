package apierror_test

import (
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
)

func TestFromLocalReply(t *testing.T) {
	tests := []struct {
		status, wantStatus int
		wantCode           string
	}{
		{500, 503, apierror.CodeServiceUnavailable},
		{502, 502, apierror.CodeNoProviderAvailable},
		{503, 502, apierror.CodeNoProviderAvailable},
		{504, 524, apierror.CodeProviderTimeout},
		{408, 524, apierror.CodeProviderTimeout},
		{413, 413, apierror.CodeRequestTooLarge},
		{429, 429, apierror.CodeRateLimit},
	}
	for _, tt := range tests {
		e := apierror.FromLocalReply(tt.status)
		if e.Status != tt.wantStatus || e.Code != tt.wantCode || e.Message == "" {
			t.Errorf("%d: got %d %s %q, want %d %s", tt.status, e.Status, e.Code, e.Message, tt.wantStatus, tt.wantCode)
		}
	}
}
