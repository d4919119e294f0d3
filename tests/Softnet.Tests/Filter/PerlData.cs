using System.Globalization;
using System.Text;

namespace Softnet.Tests.Filter;

/// <summary>
/// Reads the literal Perl data structures of libpcap's TESTrun (lists of hashes of strings, numbers, lists) and
/// evaluates the few expressions in them: string concatenation, || and &&, scalars, and calls of TESTrun's
/// helper subs (the skip_* conditions for this machine, the errstr_* message builders; an unknown call evaluates
/// to a non-empty "?name" marker). Perl values come back as string, long, null (undef), List&lt;object?&gt; and
/// Dictionary&lt;string, object?&gt;.
/// </summary>
internal sealed class PerlData
{
    private readonly string _s;
    private int _p;
    private readonly Dictionary<string, object?> _scalars;

    private PerlData(string s, int p, Dictionary<string, object?> scalars)
    {
        _s = s;
        _p = p;
        _scalars = scalars;
    }

    /// <summary>The elements of <c>my @name = ( ... );</c> in <paramref name="text"/>.</summary>
    public static List<object?> ReadArray(string text, string name, Dictionary<string, object?> scalars)
    {
        string head = $"my @{name} = (";
        int at = text.IndexOf(head, StringComparison.Ordinal);
        if (at < 0) throw new InvalidDataException($"{name} not found");
        var r = new PerlData(text, at + head.Length, scalars);
        return r.ReadList(')');
    }

    public static bool Truthy(object? v) => v switch
    {
        null => false,
        string s => s.Length > 0 && s != "0",
        long n => n != 0,
        _ => true,
    };

    private void Ws()
    {
        while (_p < _s.Length)
        {
            char c = _s[_p];
            if (char.IsWhiteSpace(c)) _p++;
            else if (c == '#') { while (_p < _s.Length && _s[_p] != '\n') _p++; }
            else break;
        }
    }

    private bool Eat(string tok)
    {
        Ws();
        if (string.CompareOrdinal(_s, _p, tok, 0, tok.Length) != 0) return false;
        _p += tok.Length;
        return true;
    }

    private List<object?> ReadList(char close)
    {
        var list = new List<object?>();
        while (true)
        {
            Ws();
            if (_s[_p] == close) { _p++; return list; }
            list.Add(Expr());
            Ws();
            if (_s[_p] == ',') _p++;
            else if (Eat("=>")) { }
        }
    }

    private Dictionary<string, object?> ReadHash()
    {
        var h = new Dictionary<string, object?>(StringComparer.Ordinal);
        while (true)
        {
            Ws();
            if (_s[_p] == '}') { _p++; return h; }
            string key = Ident();
            if (!Eat("=>")) throw new InvalidDataException($"=> expected after {key} at {_p}");
            h[key] = Expr();
            Ws();
            if (_s[_p] == ',') _p++;
        }
    }

    private string Ident()
    {
        Ws();
        int start = _p;
        while (_p < _s.Length && (char.IsLetterOrDigit(_s[_p]) || _s[_p] == '_')) _p++;
        if (_p == start) throw new InvalidDataException($"identifier expected at {_p}: {_s.Substring(_p, Math.Min(40, _s.Length - _p))}");
        return _s[start.._p];
    }

    private object? Expr()
    {
        object? v = AndExpr();
        while (Eat("||"))
        {
            object? r = AndExpr();
            if (!Truthy(v)) v = r;
        }
        return v;
    }

    private object? AndExpr()
    {
        object? v = Concat();
        while (Eat("&&"))
        {
            object? r = Concat();
            if (Truthy(v)) v = r;
        }
        return v;
    }

    private object? Concat()
    {
        object? v = Term();
        while (true)
        {
            Ws();
            if (_p < _s.Length && _s[_p] == '.' && !(_p + 1 < _s.Length && char.IsDigit(_s[_p + 1])))
            {
                _p++;
                v = Str(v) + Str(Term());
            }
            else return v;
        }
    }

    private static string Str(object? v) => v switch
    {
        null => "",
        long n => n.ToString(CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    private object? Term()
    {
        Ws();
        char c = _s[_p];
        switch (c)
        {
            case '\'': return SingleQuoted();
            case '"': return DoubleQuoted();
            case '[': _p++; return ReadList(']');
            case '{': _p++; return ReadHash();
            case '(':
                {
                    _p++;
                    object? v = Expr();
                    if (!Eat(")")) throw new InvalidDataException($") expected at {_p}");
                    return v;
                }
            case '$':
                {
                    _p++;
                    bool brace = Eat("{");
                    string name = Ident();
                    if (brace) Eat("}");
                    return _scalars.TryGetValue(name, out var v) ? v : "?$" + name;
                }
        }
        if (char.IsDigit(c) || c == '-')
        {
            int start = _p++;
            while (_p < _s.Length && (char.IsLetterOrDigit(_s[_p]) || _s[_p] == '_'
                || (_s[_p] == '.' && _p + 1 < _s.Length && char.IsDigit(_s[_p + 1])))) _p++;
            string num = _s[start.._p].Replace("_", "", StringComparison.Ordinal);
            if (num.Contains('.', StringComparison.Ordinal)) return num;
            return num.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? long.Parse(num[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture)
                : long.Parse(num, CultureInfo.InvariantCulture);
        }
        string id = Ident();
        if (id == "undef") return null;
        var args = new List<object?>();
        Ws();
        if (_p < _s.Length && _s[_p] == '(')
        {
            _p++;
            args = ReadList(')');
        }
        return Call(id, args);
    }

    private string SingleQuoted()
    {
        var sb = new StringBuilder();
        _p++;
        while (_s[_p] != '\'')
        {
            if (_s[_p] == '\\' && (_s[_p + 1] == '\'' || _s[_p + 1] == '\\')) { sb.Append(_s[_p + 1]); _p += 2; }
            else sb.Append(_s[_p++]);
        }
        _p++;
        return sb.ToString();
    }

    private string DoubleQuoted()
    {
        var sb = new StringBuilder();
        _p++;
        while (_s[_p] != '"')
        {
            char c = _s[_p];
            if (c == '\\')
            {
                char n = _s[_p + 1];
                sb.Append(n switch { 'n' => '\n', 't' => '\t', _ => n });
                _p += 2;
            }
            else if (c == '$')
            {
                _p++;
                bool brace = _s[_p] == '{';
                if (brace) _p++;
                int start = _p;
                while (char.IsLetterOrDigit(_s[_p]) || _s[_p] == '_') _p++;
                string name = _s[start.._p];
                if (brace) _p++;
                sb.Append(Str(_scalars.TryGetValue(name, out var v) ? v : "?$" + name));
            }
            else { sb.Append(c); _p++; }
        }
        _p++;
        return sb.ToString();
    }

    // TESTrun's helper subs, as they evaluate on a little-endian Linux machine with glibc and no name databases
    // set up for the tests (Softnet resolves no host, network or Ethernet names anyway).
    private static object? Call(string name, List<object?> a)
    {
        string A(int i) => i < a.Count ? Str(a[i]) : "";
        switch (name)
        {
            case "skip_os": return A(0) == "linux" ? "linux" : "";
            case "skip_os_not": return A(0) == "linux" ? "" : "not " + A(0);
            case "skip_big_endian" or "skip_musl_libc" or "skip_config_def1" or "skip_igrp88" or "skip_no_translatetest": return "";
            case "skip_little_endian": return "little-endian";
            case "skip_config_not_def1": return $"{A(0)} (Linux BPF extensions)";
            case "skip_igrp9": return "IGRP is 88 here";
            case "skip_no_hosts" or "skip_no_hosts_casecmp": return "needs the libpcap.test names in /etc/hosts";
            case "skip_no_ethers" or "skip_no_ethers_casecmp": return "needs the libpcap.test names in /etc/ethers";
            case "skip_no_networks" or "skip_no_networks_casecmp": return "needs the libpcap.test names in /etc/networks";
            case "errstr_syntax": return "can't parse filter expression: syntax error";
            case "errstr_invqual": return $"'{A(0)}' is not a valid qualifier for '{A(1)}'";
            case "errstr_nonet": return $"unknown network '{A(0)}'";
            case "errstr_nohost": return $"unknown host '{A(0)}'";
            case "errstr_nohost_af": return $"unknown host '{A(0)}' for specified address family";
            case "errstr_invhost_dn": return $"invalid DECnet address '{A(0)}'";
            case "errstr_invhost_ipv4": return $"invalid IPv4 address '{A(0)}'";
            case "errstr_invhost_ipv6": return $"invalid IPv6 address {A(0)}";
            case "errstr_nomac48host": return $"unknown Ethernet-like host '{A(0)}'";
            case "errstr_invkw_notwlan": return $"'{A(0)}' is valid for 802.11 syntax only";
            case "errstr_invlinkaddr": return $"illegal link-layer address '{A(0)}'";
            case "errstr_mac48_noether": return "Ethernet address used in non-ether expression";
            case "errstr_val_too_high": return $"{A(0)} greater than maximum {A(1)}";
            case "errstr_invport": return $"port number {A(0)} greater than maximum 65535";
            case "errstr_kw_notsup_on": return $"'{A(0)}' not supported on DLT_{A(1)}";
            case "errstr_notlive": return $"not a live capture, '{A(0)}' not supported on DLT_{A(1)}";
            case "errstr_rejects_all": return "expression rejects all packets";
            default: return "?" + name;
        }
    }
}
