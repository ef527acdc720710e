/*
Copyright 2026 The WeChat QR Code Operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package securemetricstest

import (
	"fmt"
	"strings"
)

// promqlKeywords are identifiers that PromQL's lexer reserves (binary and set operators, modifiers,
// aggregation operators, number literals): never metric names where they stand.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true, "group": true,
	"limitk": true, "limit_ratio": true, "inf": true, "nan": true,
}

// labelListWords are followed by a parenthesised list of label names.
var labelListWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// MetricNames returns the metric names an expression selects: every identifier outside label
// matchers ({…}), ranges ([…]), strings and the label lists of by/without/on/ignoring/group_*,
// that is neither a keyword nor a function (an identifier followed by "("). It covers what
// dashboards write; a selector by {__name__=…} alone is not reported, hence callers should
// also require a name per query.
func MetricNames(expr string) ([]string, error) {
	var names []string
	braces, brackets := 0, 0
	labelListNext, inLabelList := false, false
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for ; j < len(expr) && expr[j] != c; j++ {
				if expr[j] == '\\' && c != '`' {
					j++
				}
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string in %q", expr)
			}
			i = j + 1
			continue
		case isDigit(c) || c == '.':
			// A number or a duration, letters (1e3, 5m, 0x1f) included.
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
			continue
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			function := strings.HasPrefix(strings.TrimLeft(expr[j:], " \t\r\n"), "(")
			switch {
			case braces > 0 || brackets > 0 || inLabelList:
			case labelListWords[strings.ToLower(word)]:
				labelListNext = true
			case promqlKeywords[strings.ToLower(word)] || function:
			default:
				names = append(names, word)
			}
			i = j
			continue
		case c == '{':
			braces++
		case c == '}':
			braces--
		case c == '[':
			brackets++
		case c == ']':
			brackets--
		case c == '(':
			inLabelList, labelListNext = labelListNext, false
		case c == ')':
			inLabelList = false
		}
		if braces < 0 || brackets < 0 {
			return nil, fmt.Errorf("unbalanced brackets in %q", expr)
		}
		i++
	}
	if braces != 0 || brackets != 0 {
		return nil, fmt.Errorf("unbalanced brackets in %q", expr)
	}
	return names, nil
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || c|0x20 >= 'a' && c|0x20 <= 'z' }
func isIdent(c byte) bool      { return isIdentStart(c) || isDigit(c) }
