package broker

import (
	"reflect"
	"testing"
)

func TestCompareLedger(t *testing.T) {
	known := map[string]ledgerEntry{
		"same":       {Revision: 3},
		"newer":      {Revision: 3},
		"lost":       {Revision: 5},
		"older":      {Revision: 9},
		"revived":    {Revision: 8, Removed: true},
		"gone":       {Revision: 4, Removed: true},
		"deleted":    {Revision: 7},
		"repushed":   {Revision: 2, Removed: true},
		"stillgone":  {Revision: 6, Removed: true},
		"oldremoved": {Revision: 10},
	}
	store := map[string]storeEntry{
		"same":       {Revision: 3},
		"newer":      {Revision: 12},
		"older":      {Revision: 4},
		"revived":    {Revision: 1},
		"deleted":    {Revision: 11, Removed: true},
		"repushed":   {Revision: 13},
		"stillgone":  {Revision: 6, Removed: true},
		"oldremoved": {Revision: 2, Removed: true},
		"unknown":    {Revision: 14},
	}
	got := map[string]damageKind{}
	for _, d := range compareLedger(known, store) {
		got[d.App] = d.Kind
		if d.String() == "" {
			t.Errorf("%s: no text", d.App)
		}
	}
	want := map[string]damageKind{
		"lost":       damageLost,
		"older":      damageRolledBack,
		"revived":    damageRevived,
		"oldremoved": damageLost,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("compareLedger = %v, want %v", got, want)
	}
	if d := compareLedger(nil, store); len(d) != 0 {
		t.Errorf("an empty ledger found %v", d)
	}
}
