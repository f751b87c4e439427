package greylist_test

import (
	"path/filepath"
	"testing"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/greylist/storetest"
)

func TestMemoryConforms(t *testing.T) {
	storetest.Run(t, func(t *testing.T) greylist.Store { return greylist.NewMemory() })
}

func TestBoltConforms(t *testing.T) {
	defer greylist.SetChunks(7, 11)()
	storetest.Run(t, func(t *testing.T) greylist.Store { return openBolt(t, dbPath(t), greylist.BoltOptions{}) })
}

func TestBoltKeepOpenConforms(t *testing.T) {
	defer greylist.SetChunks(7, 11)()
	storetest.Run(t, func(t *testing.T) greylist.Store {
		return openBolt(t, dbPath(t), greylist.BoltOptions{KeepOpen: true})
	})
}

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "greylist.db") }

func openBolt(t testing.TB, path string, o greylist.BoltOptions) *greylist.Bolt {
	t.Helper()
	s, err := greylist.OpenBolt(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
