package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// transformSource is a realistic 50-line handler: it decodes an order
// export from the body (and options from the payload), filters and maps the
// items, does some string work and returns a summary table.
const transformSource = `local function slug(s)
  return (s:lower():gsub("[^%w]+", "-"):gsub("^-+", ""):gsub("-+$", ""))
end

local function money(cents)
  return string.format("%d.%02d", math.floor(cents / 100), cents % 100)
end

local function initials(name)
  local out = {}
  for w in name:gmatch("%a+") do out[#out + 1] = w:sub(1, 1) end
  return table.concat(out):upper()
end

function handle(req)
  local doc = json.decode(req.body)
  local opts = req.payload or {}
  local min, currency = opts.min_total or 0, (opts.currency or "eur"):upper()
  local orders, skipped, revenue = {}, 0, 0
  local by_country = {}
  for _, o in ipairs(doc.orders) do
    if o.status ~= "cancelled" and o.total >= min then
      local items = {}
      for i, it in ipairs(o.items) do
        if it.qty > 0 then
          items[#items + 1] = {sku = it.sku:upper(), qty = it.qty, line = money(it.qty * it.price)}
        end
      end
      local country = (o.customer.country or "??"):upper()
      by_country[country] = (by_country[country] or 0) + o.total
      revenue = revenue + o.total
      orders[#orders + 1] = {
        id = "ord-" .. o.id,
        customer = slug(o.customer.name),
        initials = initials(o.customer.name),
        email = o.customer.email:lower(),
        domain = o.customer.email:match("@(.+)$"),
        items = items,
        total = money(o.total) .. " " .. currency,
        tags = table.concat(o.tags, ","),
      }
    else skipped = skipped + 1 end
  end
  table.sort(orders, function(a, b) return a.id < b.id end)
  local countries = {}
  for c, total in pairs(by_country) do countries[#countries + 1] = {country = c, total = money(total)} end
  table.sort(countries, function(a, b) return a.country < b.country end)
  log.info("transformed", {orders = #orders, skipped = skipped})
  return {count = #orders, skipped = skipped, revenue = money(revenue), countries = countries, orders = orders}
end
`

// transformBody is the order export the benchmark decodes: 20 orders of 3
// items, about 5 KB of JSON.
var transformBody = func() []byte {
	type item struct {
		SKU   string `json:"sku"`
		Qty   int    `json:"qty"`
		Price int    `json:"price"`
	}
	type order struct {
		ID       int    `json:"id"`
		Status   string `json:"status"`
		Total    int    `json:"total"`
		Customer struct {
			Name    string `json:"name"`
			Email   string `json:"email"`
			Country string `json:"country"`
		} `json:"customer"`
		Items []item   `json:"items"`
		Tags  []string `json:"tags"`
	}
	var doc struct {
		Orders []order `json:"orders"`
	}
	countries := []string{"de", "fr", "nl", "it"}
	for i := range 20 {
		o := order{ID: 1000 + i, Status: "paid", Tags: []string{"web", fmt.Sprintf("batch-%d", i%3)}}
		if i%7 == 3 {
			o.Status = "cancelled"
		}
		o.Customer.Name = fmt.Sprintf("Customer Nr. %d (Test GmbH)", i)
		o.Customer.Email = fmt.Sprintf("Buyer.%d@Example%d.COM", i, i%4)
		o.Customer.Country = countries[i%len(countries)]
		for j := range 3 {
			it := item{SKU: fmt.Sprintf("sku-%d-%d", i, j), Qty: (i + j) % 4, Price: 199 + 100*j}
			o.Items = append(o.Items, it)
			o.Total += it.Qty * it.Price
		}
		doc.Orders = append(doc.Orders, o)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}()

// BenchmarkRunJSONTransform50: a realistic handler through a Pool, with the
// compiled chunk cached: JSON decoding of about 5 KB, filtering, mapping,
// string operations, sorting and the conversion of the result.
func BenchmarkRunJSONTransform50(b *testing.B) {
	if n := strings.Count(transformSource, "\n"); n != 50 {
		b.Fatalf("handler has %d lines", n)
	}
	p := newTestPool(b, 1)
	fn := Function{Name: "transform", Version: 1, Source: transformSource}
	req := Request{Trigger: "http", Method: "POST", Path: "/", Body: transformBody,
		Headers: map[string]string{"content-type": "application/json"},
		Payload: json.RawMessage(`{"min_total":100,"currency":"eur"}`)}
	ctx := context.Background()
	res := p.Run(ctx, fn, req, Limits{})
	if res.Status != Succeeded {
		b.Fatal(res.Error)
	}
	var out struct {
		Count   int    `json:"count"`
		Revenue string `json:"revenue"`
	}
	if err := json.Unmarshal(res.Value, &out); err != nil || out.Count == 0 || out.Revenue == "" {
		b.Fatalf("unexpected result %s (%v)", res.Value, err)
	}
	b.SetBytes(int64(len(transformBody)))
	b.ReportAllocs()
	for b.Loop() {
		if res := p.Run(ctx, fn, req, Limits{}); res.Status != Succeeded {
			b.Fatal(res.Error)
		}
	}
}

// twoHundredLines is a deterministic 200-line script mixing the constructs
// of real handlers: local functions, loops, table constructors, string
// methods, closures and a final handle.
var twoHundredLines = func() string {
	var sb strings.Builder
	sb.WriteString("local M = {}\n")
	for i := range 18 {
		fmt.Fprintf(&sb, "local function step%d(t, s)\n", i)
		fmt.Fprintf(&sb, "  local acc = {n = %d, name = \"step%d\", tags = {\"a\", \"b\", %q}}\n", i, i, fmt.Sprint(i))
		sb.WriteString("  for k, v in pairs(t) do\n")
		fmt.Fprintf(&sb, "    if type(v) == \"number\" and v > %d then acc.n = acc.n + v * %d.5 end\n", i, i)
		sb.WriteString("  end\n")
		fmt.Fprintf(&sb, "  local out = s:gsub(\"%%s+\", \"_\"):upper() .. string.format(\"-%%03d\", acc.n %% %d)\n", i+7)
		sb.WriteString("  return function(x) return (x or 0) + acc.n, out end\n")
		sb.WriteString("end\n")
		fmt.Fprintf(&sb, "M[%d] = step%d\n", i+1, i)
		sb.WriteString("\n")
	}
	sb.WriteString("function handle(req)\n")
	sb.WriteString("  local results, input = {}, json.decode(req.body ~= \"\" and req.body or \"{}\")\n")
	sb.WriteString("  for i, f in ipairs(M) do\n")
	sb.WriteString("    local g = f(input, req.path .. \" \" .. i)\n")
	sb.WriteString("    local v, s = g(i)\n")
	sb.WriteString("    results[#results + 1] = {v = v, s = s}\n")
	sb.WriteString("  end\n")
	sb.WriteString("  while #results > 10 do table.remove(results) end\n")
	sb.WriteString("  local total = 0\n")
	sb.WriteString("  for _, r in ipairs(results) do total = total + r.v end\n")
	sb.WriteString("  if total < 0 then error(\"negative\") elseif total == 0 then return nil end\n")
	sb.WriteString("  local keys = {}\n")
	sb.WriteString("  for k in pairs(req.query) do keys[#keys + 1] = k end\n")
	sb.WriteString("  table.sort(keys)\n")
	sb.WriteString("  local stamp = os.time()\n")
	sb.WriteString("  local id = (\"%s-%d\"):format(req.method ~= \"\" and req.method or \"GET\", stamp % 1000)\n")
	sb.WriteString("  log.debug(\"computed\", id, #keys)\n")
	sb.WriteString("  return {status = 200, body = {total = total, keys = keys, results = results}}\n")
	sb.WriteString("end\n")
	return sb.String()
}()

// BenchmarkCompile200Lines: compiling (parsing and code generation) a
// 200-line script, the cost of a cache miss and of every upload.
func BenchmarkCompile200Lines(b *testing.B) {
	if n := strings.Count(twoHundredLines, "\n"); n != 200 {
		b.Fatalf("script has %d lines", n)
	}
	if err := Compile("bench", twoHundredLines); err != nil {
		b.Fatal(err)
	}
	p := newTestPool(b, 1)
	if res := p.Run(context.Background(), Function{Name: "bench", Source: twoHundredLines}, Request{Path: "/x", Query: map[string]string{"a": "1"}}, Limits{}); res.Status != Succeeded {
		b.Fatalf("the script does not run: %s", res.Error)
	}
	b.SetBytes(int64(len(twoHundredLines)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Compile("bench", twoHundredLines); err != nil {
			b.Fatal(err)
		}
	}
}
