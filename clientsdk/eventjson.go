package clientsdk

import (
	"slices"
	"strconv"
	"unicode/utf8"
)

// The HTTP events' JSON, appended by hand: the same bytes as json.Marshal
// of the event types (fields in order, map keys sorted, strings escaped as
// encoding/json does, HTML characters included), without its reflection,
// which costs two allocations per header and query value (the gateway
// builds one event per request). eventjson_internal_test.go checks the
// equality on fuzzed requests.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it: ", \ and control characters, <, > and & (as \u003c …),
// U+2028 and U+2029, and invalid UTF-8 as \ufffd.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendField appends `,"name":` (without the comma for the first field).
func appendField(b []byte, name string, first bool) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

// appendMap appends m as a JSON object with sorted keys, as encoding/json
// writes maps (nil: null), each value by value.
func appendMap[V any](b []byte, m map[string]V, value func([]byte, V) []byte) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(m)) // sized once (slices.Sorted(maps.Keys(m)) grows it)
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = value(b, m[k])
	}
	return append(b, '}')
}

// appendStringMap appends a map of strings (nil: null).
func appendStringMap(b []byte, m map[string]string) []byte {
	return appendMap(b, m, appendJSONString)
}

// appendStringsMap appends a map of string arrays (nil map or array: null).
func appendStringsMap(b []byte, m map[string][]string) []byte {
	return appendMap(b, m, appendStrings)
}

// appendStrings appends a string array (nil: null).
func appendStrings(b []byte, vs []string) []byte {
	if vs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for j, v := range vs {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v)
	}
	return append(b, ']')
}

// appendStringFields appends string fields: name, value, name, value, … (the
// first without a comma before it when first).
func appendStringFields(b []byte, first bool, nameValues ...string) []byte {
	for i := 0; i+1 < len(nameValues); i += 2 {
		b = appendJSONString(appendField(b, nameValues[i], first && i == 0), nameValues[i+1])
	}
	return b
}

// appendJSON appends ev as json.Marshal writes it.
func (ev *APIGatewayProxyRequest) appendJSON(b []byte) []byte {
	b = appendStringFields(append(b, '{'), true, "resource", ev.Resource, "path", ev.Path, "httpMethod", ev.HTTPMethod)
	b = appendStringMap(appendField(b, "headers", false), ev.Headers)
	b = appendStringsMap(appendField(b, "multiValueHeaders", false), ev.MultiValueHeaders)
	b = appendStringMap(appendField(b, "queryStringParameters", false), ev.QueryStringParameters)
	b = appendStringsMap(appendField(b, "multiValueQueryStringParameters", false), ev.MultiValueQueryStringParameters)
	b = appendStringMap(appendField(b, "pathParameters", false), ev.PathParameters)
	b = appendStringMap(appendField(b, "stageVariables", false), ev.StageVariables)
	b = ev.RequestContext.appendJSON(appendField(b, "requestContext", false))
	b = appendJSONString(appendField(b, "body", false), ev.Body)
	b = appendBool(appendField(b, "isBase64Encoded", false), ev.IsBase64Encoded)
	return append(b, '}')
}

func (c *APIGatewayRequestContext) appendJSON(b []byte) []byte {
	b = appendStringFields(append(b, '{'), true, "accountId", c.AccountID, "resourceId", c.ResourceID, "stage", c.Stage, "requestId", c.RequestID)
	b = appendStringFields(append(appendField(b, "identity", false), '{'), true, "sourceIp", c.Identity.SourceIP, "userAgent", c.Identity.UserAgent)
	if c.Identity.User != "" {
		b = appendStringFields(b, false, "user", c.Identity.User)
	}
	b = appendStringFields(append(b, '}'), false, "resourcePath", c.ResourcePath, "httpMethod", c.HTTPMethod, "apiId", c.APIID,
		"path", c.Path, "protocol", c.Protocol, "domainName", c.DomainName, "requestTime", c.RequestTime)
	b = strconv.AppendInt(appendField(b, "requestTimeEpoch", false), c.RequestTimeEpoch, 10)
	return append(b, '}')
}

// appendJSON appends ev as json.Marshal writes it.
func (ev *ALBTargetGroupRequest) appendJSON(b []byte) []byte {
	b = appendStringFields(append(b, '{'), true, "httpMethod", ev.HTTPMethod, "path", ev.Path)
	b = appendStringMap(appendField(b, "queryStringParameters", false), ev.QueryStringParameters)
	if len(ev.MultiValueQueryStringParameters) > 0 {
		b = appendStringsMap(appendField(b, "multiValueQueryStringParameters", false), ev.MultiValueQueryStringParameters)
	}
	b = appendStringMap(appendField(b, "headers", false), ev.Headers)
	if len(ev.MultiValueHeaders) > 0 {
		b = appendStringsMap(appendField(b, "multiValueHeaders", false), ev.MultiValueHeaders)
	}
	b = appendField(b, "requestContext", false)
	b = appendJSONString(appendField(append(b, `{"elb":{`...), "targetGroupArn", true), ev.RequestContext.ELB.TargetGroupArn)
	b = append(b, "}}"...)
	b = appendBool(appendField(b, "isBase64Encoded", false), ev.IsBase64Encoded)
	b = appendJSONString(appendField(b, "body", false), ev.Body)
	return append(b, '}')
}
