package executor

import lua "github.com/Shopify/go-lua"

// tableSort is Lua 5.2's table.sort (ltablib.c's auxsort, a quicksort with
// a median of three), replacing go-lua's, which sorts with Go's sort.Sort
// and then raises "invalid order function for sorting" whenever the last
// element compares less than the first: an array holding NaN, which no
// order can sort, failed although Lua 5.2 sorts it without complaint. Here
// that error is raised where Lua raises it, when a comparison function
// makes the partition run off the array. Elements are read and written raw,
// as in Lua; comparisons use the function given or "<" with its
// metamethods. The work is charged before the call (see chargeTableWork).
func tableSort(l *lua.State) int {
	lua.CheckType(l, 1, lua.TypeTable)
	n := lua.LengthEx(l, 1)
	lua.CheckStackWithMessage(l, 40, "")
	if !l.IsNoneOrNil(2) {
		lua.CheckType(l, 2, lua.TypeFunction)
	}
	l.SetTop(2)
	auxSort(l, 1, n)
	return 0
}

// sortLess reports whether the value at stack index a sorts before the one
// at b (both negative, relative to the top at the call).
func sortLess(l *lua.State, a, b int) bool {
	if l.IsNil(2) {
		return l.Compare(a, b, lua.OpLT)
	}
	l.PushValue(2)
	l.PushValue(a - 1) // -1: the function was pushed
	l.PushValue(b - 2) // -2: the function and a
	l.Call(2, 1)
	res := l.ToBoolean(-1)
	l.Pop(1)
	return res
}

// set2 pops two values into t[i] and t[j] (the top one into t[i]).
func set2(l *lua.State, i, j int) {
	l.RawSetInt(1, i)
	l.RawSetInt(1, j)
}

func auxSort(l *lua.State, lo, up int) {
	for lo < up { // a loop for the larger half, recursion for the smaller
		// Order t[lo], t[(lo+up)/2] and t[up].
		l.RawGetInt(1, lo)
		l.RawGetInt(1, up)
		if sortLess(l, -1, -2) { // t[up] < t[lo]?
			set2(l, lo, up)
		} else {
			l.Pop(2)
		}
		if up-lo == 1 {
			break
		}
		i := lo + (up-lo)/2
		l.RawGetInt(1, i)
		l.RawGetInt(1, lo)
		if sortLess(l, -2, -1) { // t[i] < t[lo]?
			set2(l, i, lo)
		} else {
			l.Pop(1)
			l.RawGetInt(1, up)
			if sortLess(l, -1, -2) { // t[up] < t[i]?
				set2(l, i, up)
			} else {
				l.Pop(2)
			}
		}
		if up-lo == 2 {
			break
		}
		l.RawGetInt(1, i) // the pivot P
		l.PushValue(-1)
		l.RawGetInt(1, up-1)
		set2(l, i, up-1)
		// t[lo] <= P == t[up-1] <= t[up]: partition lo+1 .. up-2.
		i = lo
		j := up - 1
		for {
			for i++; ; i++ { // until t[i] >= P
				l.RawGetInt(1, i)
				if !sortLess(l, -1, -2) {
					break
				}
				if i >= up {
					lua.Errorf(l, "invalid order function for sorting")
				}
				l.Pop(1)
			}
			for j--; ; j-- { // until t[j] <= P
				l.RawGetInt(1, j)
				if !sortLess(l, -3, -1) {
					break
				}
				if j <= lo {
					lua.Errorf(l, "invalid order function for sorting")
				}
				l.Pop(1)
			}
			if j < i {
				l.Pop(3) // P, t[i], t[j]
				break
			}
			set2(l, i, j)
		}
		l.RawGetInt(1, up-1)
		l.RawGetInt(1, i)
		set2(l, up-1, i) // the pivot into its place
		// t[lo..i-1] <= t[i] == P <= t[i+1..up]
		if i-lo < up-i {
			auxSort(l, lo, i-1)
			lo = i + 1
		} else {
			auxSort(l, i+1, up)
			up = i - 1
		}
	}
}
