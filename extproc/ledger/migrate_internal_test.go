package ledger

import (
	"testing"
	"testing/fstest"
)

func TestLoadMigrations(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("SELECT 1;")}
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		want    []string // names, in order
		wantErr bool
	}{
		{name: "sorted by version", fsys: fstest.MapFS{"0010_b.sql": file, "0002_a.sql": file, "0001_init.sql": file},
			want: []string{"0001_init.sql", "0002_a.sql", "0010_b.sql"}},
		{name: "empty", fsys: fstest.MapFS{}},
		{name: "bad name", fsys: fstest.MapFS{"1_init.sql": file}, wantErr: true},
		{name: "upper case", fsys: fstest.MapFS{"0001_Init.sql": file}, wantErr: true},
		{name: "version zero", fsys: fstest.MapFS{"0000_init.sql": file}, wantErr: true},
		{name: "duplicate version", fsys: fstest.MapFS{"0001_a.sql": file, "0001_b.sql": file}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			migs, err := loadMigrations(tt.fsys)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v; want error %v", err, tt.wantErr)
			}
			var got []string
			for _, m := range migs {
				got = append(got, m.name)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v; want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v; want %v", got, tt.want)
				}
			}
		})
	}
}

func TestValidUUID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"0b7e8d2a-6c1f-4e7b-9a3d-2f5c8e1b4a60", true},
		{"0B7E8D2A-6C1F-4E7B-9A3D-2F5C8E1B4A60", true},
		{"", false},
		{"0b7e8d2a6c1f4e7b9a3d2f5c8e1b4a60", false},
		{"0b7e8d2a-6c1f-4e7b-9a3d-2f5c8e1b4a6g", false},
		{"0b7e8d2a-6c1f-4e7b-9a3d_2f5c8e1b4a60", false},
	}
	for _, tt := range tests {
		if got := validUUID(tt.in); got != tt.want {
			t.Errorf("validUUID(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}
