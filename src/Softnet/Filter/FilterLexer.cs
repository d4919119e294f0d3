using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Softnet.Filter;

/// <summary>Token kinds of the pcap-filter language (the %token list of libpcap's grammar.y).</summary>
internal enum Tok
{
    End, Error,
    // Values.
    Num, Id, Hid, Hid6, Eid, Aid,
    // Punctuation ('!' and "not" are one token, as are "and"/"&&" and "or"/"||").
    Plus, Minus, Star, Slash, Percent, Colon, LBracket, RBracket, Not, Lt, Gt, LParen, RParen, Amp, Pipe, Caret,
    Eq, Geq, Leq, Neq, Lsh, Rsh, And, Or,
    // Qualifiers and primitives.
    Dst, Src, Host, Net, Mask, Port, Portrange, Proto, Protochain, Gateway,
    Less, Greater, Byte, Broadcast, Multicast, Len, Inbound, Outbound, Ifindex,
    Vlan, Mpls, Pppoed, Pppoes, Geneve, Llc,
    Addr1, Addr2, Addr3, Addr4, Ra, Ta, Type, Subtype, Dir,
    // Protocol names (pname).
    Link, Ip, Arp, Rarp, Sctp, Tcp, Udp, Icmp, Igmp, Igrp, Pim, Vrrp, Carp, Atalk, Aarp, Decnet, Lat, Sca, Mopdl,
    Moprc, Ip6, Icmp6, Ah, Esp, Iso, Esis, Isis, L1, L2, Iih, Lsp, Snp, Csnp, Psnp, Clnp, Stp, Ipx, Netbeui, Radio,
    // Keywords of link types and extensions this compiler does not generate code for (ATM, MTP2/3, pflog),
    // and "vxlan", which libpcap 1.10 does not know either.
    Unsupported,
}

internal readonly record struct Token(Tok Kind, int Pos, int Length, string Text, uint Value = 0);

/// <summary>
/// The scanner of libpcap (scanner.l) by flex's rule: the longest match wins, a tie goes to the earlier rule, so
/// "tcp" is a keyword, "tcp1" a name, "10.1" a host id, "tcp-syn" the number 2. Keywords are case-sensitive.
/// </summary>
internal static class FilterLexer
{
    private static readonly Dictionary<string, Tok> Keywords = new(StringComparer.Ordinal)
    {
        ["dst"] = Tok.Dst, ["src"] = Tok.Src,
        ["link"] = Tok.Link, ["ether"] = Tok.Link, ["ppp"] = Tok.Link, ["slip"] = Tok.Link, ["fddi"] = Tok.Link, ["tr"] = Tok.Link, ["wlan"] = Tok.Link,
        ["arp"] = Tok.Arp, ["rarp"] = Tok.Rarp, ["ip"] = Tok.Ip, ["sctp"] = Tok.Sctp, ["tcp"] = Tok.Tcp, ["udp"] = Tok.Udp,
        ["icmp"] = Tok.Icmp, ["igmp"] = Tok.Igmp, ["igrp"] = Tok.Igrp, ["pim"] = Tok.Pim, ["vrrp"] = Tok.Vrrp, ["carp"] = Tok.Carp,
        ["radio"] = Tok.Radio, ["ip6"] = Tok.Ip6, ["icmp6"] = Tok.Icmp6, ["ah"] = Tok.Ah, ["esp"] = Tok.Esp,
        ["atalk"] = Tok.Atalk, ["aarp"] = Tok.Aarp, ["decnet"] = Tok.Decnet, ["lat"] = Tok.Lat, ["sca"] = Tok.Sca,
        ["moprc"] = Tok.Moprc, ["mopdl"] = Tok.Mopdl, ["iso"] = Tok.Iso, ["esis"] = Tok.Esis, ["es-is"] = Tok.Esis,
        ["isis"] = Tok.Isis, ["is-is"] = Tok.Isis, ["l1"] = Tok.L1, ["l2"] = Tok.L2, ["iih"] = Tok.Iih, ["lsp"] = Tok.Lsp,
        ["snp"] = Tok.Snp, ["csnp"] = Tok.Csnp, ["psnp"] = Tok.Psnp, ["clnp"] = Tok.Clnp, ["stp"] = Tok.Stp, ["ipx"] = Tok.Ipx,
        ["netbeui"] = Tok.Netbeui,
        ["host"] = Tok.Host, ["net"] = Tok.Net, ["mask"] = Tok.Mask, ["port"] = Tok.Port, ["portrange"] = Tok.Portrange,
        ["proto"] = Tok.Proto, ["protochain"] = Tok.Protochain, ["gateway"] = Tok.Gateway,
        ["type"] = Tok.Type, ["subtype"] = Tok.Subtype, ["direction"] = Tok.Dir, ["dir"] = Tok.Dir,
        ["address1"] = Tok.Addr1, ["addr1"] = Tok.Addr1, ["address2"] = Tok.Addr2, ["addr2"] = Tok.Addr2,
        ["address3"] = Tok.Addr3, ["addr3"] = Tok.Addr3, ["address4"] = Tok.Addr4, ["addr4"] = Tok.Addr4,
        ["ra"] = Tok.Ra, ["ta"] = Tok.Ta,
        ["less"] = Tok.Less, ["greater"] = Tok.Greater, ["byte"] = Tok.Byte,
        ["broadcast"] = Tok.Broadcast, ["multicast"] = Tok.Multicast,
        ["and"] = Tok.And, ["or"] = Tok.Or, ["not"] = Tok.Not, ["len"] = Tok.Len, ["length"] = Tok.Len,
        ["inbound"] = Tok.Inbound, ["outbound"] = Tok.Outbound, ["ifindex"] = Tok.Ifindex,
        ["llc"] = Tok.Llc, ["vlan"] = Tok.Vlan, ["mpls"] = Tok.Mpls, ["pppoed"] = Tok.Pppoed, ["pppoes"] = Tok.Pppoes, ["geneve"] = Tok.Geneve,
    };

    private static readonly HashSet<string> UnsupportedKeywords = new(StringComparer.Ordinal)
    {
        "lane", "metac", "bcc", "oam", "oamf4", "oamf4ec", "oamf4sc", "sc", "ilmic", "vpi", "vci", "connectmsg",
        "metaconnect", "on", "ifname", "rset", "ruleset", "rnr", "rulenum", "srnr", "subrulenum", "reason", "action",
        "vxlan", "fisu", "lssu", "lsu", "msu", "hfisu", "hlssu", "hmsu", "sio", "opc", "dpc", "sls", "hsio", "hopc", "hdpc", "hsls",
    };

    // The named numbers of scanner.l (ICMP/ICMPv6 types and fields, TCP flags).
    private static readonly Dictionary<string, uint> Named = new(StringComparer.Ordinal)
    {
        ["icmptype"] = 0, ["icmpcode"] = 1, ["icmp-echoreply"] = 0, ["icmp-unreach"] = 3, ["icmp-sourcequench"] = 4,
        ["icmp-redirect"] = 5, ["icmp-echo"] = 8, ["icmp-routeradvert"] = 9, ["icmp-routersolicit"] = 10,
        ["icmp-timxceed"] = 11, ["icmp-paramprob"] = 12, ["icmp-tstamp"] = 13, ["icmp-tstampreply"] = 14,
        ["icmp-ireq"] = 15, ["icmp-ireqreply"] = 16, ["icmp-maskreq"] = 17, ["icmp-maskreply"] = 18,
        ["icmp6type"] = 0, ["icmp6code"] = 1, ["icmp6-destinationunreach"] = 1, ["icmp6-packettoobig"] = 2,
        ["icmp6-timeexceeded"] = 3, ["icmp6-parameterproblem"] = 4, ["icmp6-echo"] = 128, ["icmp6-echoreply"] = 129,
        ["icmp6-multicastlistenerquery"] = 130, ["icmp6-multicastlistenerreportv1"] = 131,
        ["icmp6-multicastlistenerdone"] = 132, ["icmp6-routersolicit"] = 133, ["icmp6-routeradvert"] = 134,
        ["icmp6-neighborsolicit"] = 135, ["icmp6-neighboradvert"] = 136, ["icmp6-redirect"] = 137,
        ["icmp6-routerrenum"] = 138, ["icmp6-nodeinformationquery"] = 139, ["icmp6-nodeinformationresponse"] = 140,
        ["icmp6-ineighbordiscoverysolicit"] = 141, ["icmp6-ineighbordiscoveryadvert"] = 142,
        ["icmp6-multicastlistenerreportv2"] = 143, ["icmp6-homeagentdiscoveryrequest"] = 144,
        ["icmp6-homeagentdiscoveryreply"] = 145, ["icmp6-mobileprefixsolicit"] = 146, ["icmp6-mobileprefixadvert"] = 147,
        ["icmp6-certpathsolicit"] = 148, ["icmp6-certpathadvert"] = 149, ["icmp6-multicastrouteradvert"] = 151,
        ["icmp6-multicastroutersolicit"] = 152, ["icmp6-multicastrouterterm"] = 153,
        ["tcpflags"] = 13, ["tcp-fin"] = 0x01, ["tcp-syn"] = 0x02, ["tcp-rst"] = 0x04, ["tcp-push"] = 0x08,
        ["tcp-ack"] = 0x10, ["tcp-urg"] = 0x20, ["tcp-ece"] = 0x40, ["tcp-cwr"] = 0x80,
    };

    private const string N = "(?:0[Xx][0-9A-Fa-f]+|[0-9]+)";
    private const string Bx = "[0-9A-Fa-f][0-9A-Fa-f]?";
    private const string B2 = "[0-9A-Fa-f]{4}";
    private static readonly Regex AidRx = new(@"\G\$" + Bx, RegexOptions.CultureInvariant);
    private static readonly Regex MacRx = new(@"\G(?:" + $"{Bx}:{Bx}:{Bx}:{Bx}:{Bx}:{Bx}|{Bx}-{Bx}-{Bx}-{Bx}-{Bx}-{Bx}|" +
        $@"{Bx}\.{Bx}\.{Bx}\.{Bx}\.{Bx}\.{Bx}|{B2}\.{B2}\.{B2}|{B2}{B2}{B2})", RegexOptions.CultureInvariant);
    private static readonly Regex NumRx = new(@"\G" + N, RegexOptions.CultureInvariant);
    private static readonly Regex HidRx = new(@"\G" + $@"{N}(?:\.{N}){{1,3}}", RegexOptions.CultureInvariant);
    private static readonly Regex V6CandRx = new(@"\G[0-9A-Fa-f:.]+", RegexOptions.CultureInvariant);
    private static readonly Regex BogusMacRx = new(@"\G" + $"{Bx}:+(?:{Bx}:+)+", RegexOptions.CultureInvariant);
    private static readonly Regex IdRx = new(@"\G[A-Za-z0-9](?:[-_.A-Za-z0-9]*[.A-Za-z0-9])?", RegexOptions.CultureInvariant);
    private static readonly Regex EscIdRx = new(@"\G\\[^ !()\n\t]+", RegexOptions.CultureInvariant);
    // The longest possible keyword/named-number match: a run of the characters they are made of.
    private static readonly Regex WordRx = new(@"\G[A-Za-z0-9-]+", RegexOptions.CultureInvariant);

    public static List<Token> Tokenize(string s)
    {
        var list = new List<Token>();
        int i = 0;
        while (true)
        {
            while (i < s.Length && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
            if (i >= s.Length) { list.Add(new Token(Tok.End, i, 0, "")); return list; }
            Token t = Next(s, i);
            list.Add(t);
            if (t.Kind == Tok.Error) return list;
            i += t.Length;
        }
    }

    private static Token Next(string s, int i)
    {
        // Candidates in scanner.l's rule order; the longest wins, the first of equal length wins.
        Token best = default;
        int bestLen = 0;
        void Offer(Tok kind, int len, string? text = null, uint value = 0)
        {
            if (len > bestLen) { bestLen = len; best = new Token(kind, i, len, text ?? s.Substring(i, len), value); }
        }

        var w = WordRx.Match(s, i);
        if (w.Success)
        {
            // A keyword matches only as a whole word of its own length; a longer word may still match ID below.
            for (int len = w.Length; len > 0; len--)
            {
                string word = s.Substring(i, len);
                if (Keywords.TryGetValue(word, out var kw)) { Offer(kw, len); break; }
                if (UnsupportedKeywords.Contains(word)) { Offer(Tok.Unsupported, len); break; }
            }
        }
        if (i + 1 < s.Length)
        {
            string two = s.Substring(i, 2);
            Tok? op2 = two switch
            {
                "&&" => Tok.And, "||" => Tok.Or, ">=" => Tok.Geq, "<=" => Tok.Leq, "!=" => Tok.Neq, "==" => Tok.Eq,
                "<<" => Tok.Lsh, ">>" => Tok.Rsh, _ => null,
            };
            if (op2 is { } o2) Offer(o2, 2);
        }
        Tok? op1 = s[i] switch
        {
            '+' => Tok.Plus, '-' => Tok.Minus, '*' => Tok.Star, '/' => Tok.Slash, '%' => Tok.Percent, ':' => Tok.Colon,
            '[' => Tok.LBracket, ']' => Tok.RBracket, '!' => Tok.Not, '<' => Tok.Lt, '>' => Tok.Gt, '(' => Tok.LParen,
            ')' => Tok.RParen, '&' => Tok.Amp, '|' => Tok.Pipe, '^' => Tok.Caret, '=' => Tok.Eq, _ => null,
        };
        if (op1 is { } o1) Offer(o1, 1);
        var m = AidRx.Match(s, i);
        if (m.Success) Offer(Tok.Aid, m.Length, m.Value.Substring(1));
        m = MacRx.Match(s, i);
        if (m.Success) Offer(Tok.Eid, m.Length);
        m = NumRx.Match(s, i);
        if (m.Success && m.Length > bestLen)
        {
            if (!TryStou(m.Value, out uint v, out string? err)) return new Token(Tok.Error, i, m.Length, err!);
            Offer(Tok.Num, m.Length, null, v);
        }
        m = HidRx.Match(s, i);
        if (m.Success) Offer(Tok.Hid, m.Length);
        m = V6CandRx.Match(s, i);
        if (m.Success && m.Value.Contains(':'))
        {
            for (int len = m.Length; len > bestLen; len--)
            {
                string cand = s.Substring(i, len);
                if (IsV6(cand)) { Offer(Tok.Hid6, len); break; }
            }
        }
        m = BogusMacRx.Match(s, i);
        if (m.Success && m.Length > bestLen) return new Token(Tok.Error, i, m.Length, $"bogus ethernet address {m.Value}");
        if (w.Success)
        {
            for (int len = w.Length; len > bestLen; len--)
                if (Named.TryGetValue(s.Substring(i, len), out uint nv)) { Offer(Tok.Num, len, null, nv); break; }
        }
        m = IdRx.Match(s, i);
        if (m.Success) Offer(Tok.Id, m.Length);
        m = EscIdRx.Match(s, i);
        if (m.Success) Offer(Tok.Id, m.Length, m.Value.Substring(1));
        if (bestLen == 0) return new Token(Tok.Error, i, 1, FilterException.SyntaxError);
        return best;
    }

    // flex's V6 forms: 1..4 hex digits per group, at most one "::", optionally an embedded dotted quad at the end.
    private static bool IsV6(string cand)
    {
        if (cand.Contains('%')) return false;
        if (!IPAddress.TryParse(cand, out var ip) || ip.AddressFamily != AddressFamily.InterNetworkV6) return false;
        foreach (var g in cand.Split(':'))
            if (g.Length > 4 && !g.Contains('.')) return false;
        return true;
    }

    /// <summary>scanner.l's stou(): decimal, 0x hex or 0-prefixed octal, refusing what overflows 32 bits.</summary>
    internal static bool TryStou(string text, out uint value, out string? error)
    {
        value = 0;
        error = null;
        ulong n = 0;
        if (text.Length > 1 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
        {
            foreach (char c in text.AsSpan(2))
            {
                n = (n << 4) + (uint)Convert.ToInt32(c.ToString(), 16);
                if (n > uint.MaxValue) { error = $"number {text} overflows 32 bits"; return false; }
            }
        }
        else if (text.Length > 1 && text[0] == '0')
        {
            foreach (char c in text.AsSpan(1))
            {
                if (c < '0' || c > '7') { error = $"number {text} contains non-octal digit"; return false; }
                n = (n << 3) + (uint)(c - '0');
                if (n > uint.MaxValue) { error = $"number {text} overflows 32 bits"; return false; }
            }
        }
        else
        {
            foreach (char c in text)
            {
                n = n * 10 + (uint)(c - '0');
                if (n > uint.MaxValue) { error = $"number {text} overflows 32 bits"; return false; }
            }
        }
        value = (uint)n;
        return true;
    }
}
