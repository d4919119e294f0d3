namespace Softnet.Filter;

/// <summary>
/// Recursive-descent parser for the pcap-filter language with the meaning of libpcap's LALR grammar (grammar.y):
/// "and" and "or" have equal precedence and group left ("a or b and c" is "(a or b) and c"), "not" binds tighter;
/// a bare id after and/or takes the qualifiers of the term before it ("host a or b", "port 80 or 443",
/// "src net 10.0.0.0/8 and (1.2.3.4 or 5.6.7.8)"); arithmetic has '|' &lt; '&amp;' &lt; shifts &lt; '+' '-' &lt; '*' '/'
/// &lt; unary minus, and '%' and '^', which the grammar leaves without a precedence, shift as bison's default does
/// (their right operand is the whole rest of the arithmetic). Where LALR(1) decides by lookahead ('(' starting an
/// arithmetic operand, a parenthesised expression or an id list), this parser tries one reading and backs up.
/// </summary>
internal sealed class FilterParser
{
    private readonly List<Token> _toks;
    private int _p;
    private int _farthest;
    private string? _farthestReason;

    private sealed class Fail(int pos, string reason) : Exception(reason)
    {
        public int Pos { get; } = pos;
        public string Reason { get; } = reason;
    }

    /// <summary>A keyword of a link type or extension this compiler has no code generation for.</summary>
    internal sealed class Unsupported(string what, int pos) : Exception(what)
    {
        public int Pos { get; } = pos;
    }

    private FilterParser(List<Token> toks) { _toks = toks; }

    /// <summary>Parses an expression; null for the empty expression (which accepts every packet).</summary>
    public static FNode? Parse(string expr)
    {
        var toks = FilterLexer.Tokenize(expr);
        var err = toks.Find(t => t.Kind == Tok.Error);
        var parser = new FilterParser(toks);
        try
        {
            if (toks[0].Kind == Tok.End) return null;
            if (toks[0].Kind == Tok.Error) throw new Fail(toks[0].Pos, toks[0].Text);
            var (node, _) = parser.ParseExpr(Qual.Err);
            if (parser.Cur.Kind != Tok.End) parser.Throw();
            return node;
        }
        catch (Fail f)
        {
            int pos = Math.Max(f.Pos, parser._farthest);
            string reason = pos == parser._farthest && parser._farthestReason != null ? parser._farthestReason : f.Reason;
            if (err.Kind == Tok.Error && err.Pos <= pos) { pos = err.Pos; reason = err.Text; }
            throw new FilterException(reason, pos);
        }
        catch (Unsupported u)
        {
            throw new FilterNotSupportedException(u.Message, u.Pos);
        }
    }

    private Token Cur => _toks[_p];
    private Token Peek(int n = 1) => _toks[Math.Min(_p + n, _toks.Count - 1)];

    private Fail Throw(string reason = FilterException.SyntaxError)
    {
        int pos = Cur.Pos;
        if (Cur.Kind == Tok.Error) reason = Cur.Text;
        if (pos >= _farthest) { _farthest = pos; _farthestReason = reason; }
        throw new Fail(pos, reason);
    }

    private Token Expect(Tok k)
    {
        if (Cur.Kind != k) Throw();
        return _toks[_p++];
    }

    private bool Accept(Tok k)
    {
        if (Cur.Kind != k) return false;
        _p++;
        return true;
    }

    // Tries one reading; on failure backs up and returns false.
    private bool Try<T>(Func<T> f, out T result)
    {
        int save = _p;
        try { result = f(); return true; }
        catch (Fail) { _p = save; result = default!; return false; }
    }

    // expr: term | expr and term | expr and id | expr or term | expr or id
    private (FNode, Qual) ParseExpr(Qual q)
    {
        var (node, cur) = ParseTerm(q);
        while (Cur.Kind is Tok.And or Tok.Or)
        {
            bool and = Cur.Kind == Tok.And;
            _p++;
            var (r, rq) = ParseTermOrId(cur);
            node = and ? new AndNode(node, r) : new OrNode(node, r);
            cur = rq;
        }
        return (node, cur);
    }

    private (FNode, Qual) ParseTermOrId(Qual q)
    {
        if (Cur.Kind == Tok.Not)
        {
            int at = Cur.Pos;
            _p++;
            var (x, xq) = ParseTermOrId(q);
            return (new NotNode(x, at), xq);
        }
        if (StartsId(Cur.Kind) || Cur.Kind == Tok.LParen)
        {
            int save = _p;
            if (Try(() => ParseTerm(q), out var t) && FollowsTerm(Cur.Kind)) return t;
            _p = save;
            return (ParseId(q), q);
        }
        return ParseTerm(q);
    }

    private static bool StartsId(Tok k) => k is Tok.Id or Tok.Hid or Tok.Hid6 or Tok.Eid or Tok.Aid or Tok.Num;

    private static bool FollowsTerm(Tok k) => k is Tok.And or Tok.Or or Tok.RParen or Tok.End;

    // term: rterm | not term
    private (FNode, Qual) ParseTerm(Qual q)
    {
        if (Cur.Kind == Tok.Not)
        {
            int at = Cur.Pos;
            _p++;
            var (x, xq) = ParseTerm(q);
            return (new NotNode(x, at), xq);
        }
        return ParseRterm(q);
    }

    private static bool IsPname(Tok k) => k >= Tok.Link && k <= Tok.Radio;

    private static bool IsHeadStart(Tok k) => k is Tok.Src or Tok.Dst or Tok.Host or Tok.Net or Tok.Port or Tok.Portrange
        or Tok.Proto or Tok.Protochain or Tok.Gateway or Tok.Addr1 or Tok.Addr2 or Tok.Addr3 or Tok.Addr4 or Tok.Ra or Tok.Ta;

    private (FNode, Qual) ParseRterm(Qual q)
    {
        Token t = Cur;
        switch (t.Kind)
        {
            case Tok.LParen:
                {
                    // arth relop arth, or paren expr ')' (whose qualifiers are those from before the paren).
                    if (Try(ParseRelation, out var rel)) return (rel, Qual.Err);
                    _p++;
                    var (e, _) = ParseExpr(q);
                    Expect(Tok.RParen);
                    return (e, q);
                }
            case Tok.Num or Tok.Minus or Tok.Len:
                return (ParseRelation(), Qual.Err);
            case Tok.Less or Tok.Greater:
                {
                    _p++;
                    uint n = Expect(Tok.Num).Value;
                    return (new OtherNode(t.Kind == Tok.Less ? OtherKind.Less : OtherKind.Greater, Qp.Default, n, true, '\0', 0, t.Pos), Qual.Err);
                }
            case Tok.Byte:
                {
                    _p++;
                    uint idx = Expect(Tok.Num).Value;
                    char op = Cur.Kind switch
                    {
                        Tok.Amp => '&', Tok.Pipe => '|', Tok.Lt => '<', Tok.Gt => '>', Tok.Eq => '=', _ => '\0',
                    };
                    if (op == '\0') Throw();
                    _p++;
                    uint v = Expect(Tok.Num).Value;
                    return (new OtherNode(OtherKind.ByteOp, Qp.Default, idx, true, op, v, t.Pos), Qual.Err);
                }
            case Tok.Vlan or Tok.Mpls or Tok.Pppoes or Tok.Geneve:
                {
                    _p++;
                    var kind = t.Kind switch { Tok.Vlan => OtherKind.Vlan, Tok.Mpls => OtherKind.Mpls, Tok.Pppoes => OtherKind.Pppoes, _ => OtherKind.Geneve };
                    if (Cur.Kind is Tok.Num or Tok.LParen)
                        return (new OtherNode(kind, Qp.Default, ParsePnum(), true, '\0', 0, t.Pos), Qual.Err);
                    return (new OtherNode(kind, Qp.Default, 0, false, '\0', 0, t.Pos), Qual.Err);
                }
            case Tok.Llc:
                {
                    // pllc: LLC | LLC ID | LLC PF_RNR ("rnr" is also the pflog keyword).
                    _p++;
                    char kind = 'a';
                    uint sub = 0;
                    if (Cur.Kind == Tok.Id || (Cur.Kind == Tok.Unsupported && Cur.Text is "rnr" or "rulenum"))
                    {
                        string id = Cur.Kind == Tok.Id ? Cur.Text.ToLowerInvariant() : "rnr";
                        int at = Cur.Pos;
                        _p++;
                        (kind, sub) = id switch
                        {
                            "i" => ('i', 0u), "s" => ('s', 0u), "u" => ('u', 0u),
                            "rr" => ('S', 0x01u), "rnr" => ('S', 0x05u), "rej" => ('S', 0x09u),
                            "ui" => ('U', 0x03u), "ua" => ('U', 0x63u), "disc" => ('U', 0x43u), "dm" => ('U', 0x0fu),
                            "sabme" => ('U', 0x6fu), "test" => ('U', 0xe3u), "xid" => ('U', 0xafu), "frmr" => ('U', 0x87u),
                            _ => throw new Fail(at, $"unknown LLC type name \"{_toks[_p - 1].Text}\""),
                        };
                    }
                    return (new OtherNode(OtherKind.Llc, Qp.Default, 0, false, kind, sub, t.Pos), Qual.Err);
                }
            case Tok.Pppoed:
                _p++;
                return (new OtherNode(OtherKind.Pppoed, Qp.Default, 0, false, '\0', 0, t.Pos), Qual.Err);
            case Tok.Inbound or Tok.Outbound:
                _p++;
                return (new OtherNode(t.Kind == Tok.Inbound ? OtherKind.Inbound : OtherKind.Outbound, Qp.Default, 0, false, '\0', 0, t.Pos), Qual.Err);
            case Tok.Ifindex:
                {
                    _p++;
                    uint n = Expect(Tok.Num).Value;
                    return (new OtherNode(OtherKind.Ifindex, Qp.Default, n, true, '\0', 0, t.Pos), Qual.Err);
                }
            case Tok.Broadcast or Tok.Multicast:
                _p++;
                return (new OtherNode(t.Kind == Tok.Broadcast ? OtherKind.Broadcast : OtherKind.Multicast, Qp.Default, 0, false, '\0', 0, t.Pos), Qual.Err);
            case Tok.Unsupported:
                throw new Unsupported($"'{t.Text}' is not supported by this filter compiler", t.Pos);
            case Tok.Type or Tok.Subtype or Tok.Dir:
                throw new Unsupported($"802.11 '{t.Text}' is not supported by this filter compiler", t.Pos);
        }
        if (IsPname(t.Kind))
        {
            Token next = Peek();
            if (next.Kind == Tok.LBracket) return (ParseRelation(), Qual.Err);
            if (next.Kind is Tok.Broadcast or Tok.Multicast)
            {
                _p += 2;
                return (new OtherNode(next.Kind == Tok.Broadcast ? OtherKind.Broadcast : OtherKind.Multicast, ProtoOf(t.Kind), 0, false, '\0', 0, t.Pos), Qual.Err);
            }
            if (next.Kind is Tok.Type or Tok.Subtype or Tok.Dir)
                throw new Unsupported($"802.11 '{next.Text}' is not supported by this filter compiler", next.Pos);
            if (!IsHeadStart(next.Kind))
            {
                _p++;
                return (new ProtoNode(ProtoOf(t.Kind), t.Pos), Qual.Err);
            }
        }
        if (IsPname(t.Kind) || IsHeadStart(t.Kind))
        {
            Qual head = ParseHead();
            FNode id = ParseId(head);
            return (id, head);
        }
        throw Throw();
    }

    // head: pqual dqual aqual | pqual dqual | pqual aqual | pqual PROTO | pqual PROTOCHAIN | pqual GATEWAY
    private Qual ParseHead()
    {
        Qp proto = Qp.Default;
        if (IsPname(Cur.Kind)) proto = ProtoOf(_toks[_p++].Kind);
        Qd dir = Qd.Default;
        bool haveDir = false;
        switch (Cur.Kind)
        {
            case Tok.Src or Tok.Dst:
                {
                    bool src = Cur.Kind == Tok.Src;
                    _p++;
                    haveDir = true;
                    dir = src ? Qd.Src : Qd.Dst;
                    // "src or dst" / "dst and src": bison shifts the and/or here (a dqual, not two terms).
                    if (Cur.Kind is Tok.Or or Tok.And && Peek().Kind == (src ? Tok.Dst : Tok.Src))
                    {
                        dir = Cur.Kind == Tok.Or ? Qd.Or : Qd.And;
                        _p += 2;
                    }
                    break;
                }
            case Tok.Addr1: _p++; dir = Qd.Addr1; haveDir = true; break;
            case Tok.Addr2: _p++; dir = Qd.Addr2; haveDir = true; break;
            case Tok.Addr3: _p++; dir = Qd.Addr3; haveDir = true; break;
            case Tok.Addr4: _p++; dir = Qd.Addr4; haveDir = true; break;
            case Tok.Ra: _p++; dir = Qd.Ra; haveDir = true; break;
            case Tok.Ta: _p++; dir = Qd.Ta; haveDir = true; break;
        }
        Qa addr = Qa.Default;
        switch (Cur.Kind)
        {
            case Tok.Host: _p++; addr = Qa.Host; break;
            case Tok.Net: _p++; addr = Qa.Net; break;
            case Tok.Port: _p++; addr = Qa.Port; break;
            case Tok.Portrange: _p++; addr = Qa.Portrange; break;
            case Tok.Proto when !haveDir: _p++; addr = Qa.Proto; break;
            case Tok.Protochain when !haveDir: _p++; addr = Qa.Protochain; break;
            case Tok.Gateway when !haveDir: _p++; addr = Qa.Gateway; break;
            default:
                if (!haveDir) Throw();
                break;
        }
        return new Qual(addr, proto, dir);
    }

    // id: nid | pnum | paren pid ')'
    private FNode ParseId(Qual q)
    {
        Token t = Cur;
        switch (t.Kind)
        {
            case Tok.Not:
                _p++;
                return new NotNode(ParseId(q), t.Pos);
            case Tok.Num:
                _p++;
                return new IdNode(IdKind.Num, t.Text, t.Value, null, q, t.Pos);
            case Tok.LParen:
                {
                    // paren pnum ')' or paren pid ')'; the ids of a pid all carry the qualifiers from before the paren.
                    if (Try(ParsePnum, out uint v)) return new IdNode(IdKind.Num, v.ToString(System.Globalization.CultureInfo.InvariantCulture), v, null, q, t.Pos);
                    _p++;
                    FNode node = Cur.Kind is Tok.Num or Tok.LParen ? PnumId(q) : ParseNid(q);
                    bool any = false;
                    while (Cur.Kind is Tok.And or Tok.Or)
                    {
                        bool and = Cur.Kind == Tok.And;
                        _p++;
                        FNode r = ParseId(q);
                        node = and ? new AndNode(node, r) : new OrNode(node, r);
                        any = true;
                    }
                    if (!any && node is IdNode { Kind: IdKind.Num }) Throw();
                    Expect(Tok.RParen);
                    return node;
                }
        }
        return ParseNid(q);
    }

    private FNode PnumId(Qual q)
    {
        int at = Cur.Pos;
        uint v = ParsePnum();
        return new IdNode(IdKind.Num, v.ToString(System.Globalization.CultureInfo.InvariantCulture), v, null, q, at);
    }

    private FNode ParseNid(Qual q)
    {
        Token t = Cur;
        switch (t.Kind)
        {
            case Tok.Not:
                _p++;
                return new NotNode(ParseId(q), t.Pos);
            case Tok.Id:
                _p++;
                return new IdNode(IdKind.Name, t.Text, 0, null, q, t.Pos);
            case Tok.Hid:
                _p++;
                if (Cur.Kind == Tok.Slash)
                {
                    _p++;
                    uint len = Expect(Tok.Num).Value;
                    return new IdNode(IdKind.HidLen, t.Text, len, null, q, t.Pos);
                }
                if (Cur.Kind == Tok.Mask)
                {
                    _p++;
                    string m = Expect(Tok.Hid).Text;
                    return new IdNode(IdKind.HidMask, t.Text, 0, m, q, t.Pos);
                }
                return new IdNode(IdKind.Hid, t.Text, 0, null, q, t.Pos);
            case Tok.Hid6:
                _p++;
                if (Cur.Kind == Tok.Slash)
                {
                    _p++;
                    uint len = Expect(Tok.Num).Value;
                    return new IdNode(IdKind.Hid6Len, t.Text, len, null, q, t.Pos);
                }
                return new IdNode(IdKind.Hid6, t.Text, 128, null, q, t.Pos);
            case Tok.Eid:
                _p++;
                return new IdNode(IdKind.Eid, t.Text, 0, null, q, t.Pos);
            case Tok.Aid:
                _p++;
                return new IdNode(IdKind.Aid, t.Text, 0, null, q, t.Pos);
        }
        throw Throw();
    }

    // pnum: NUM | paren pnum ')'
    private uint ParsePnum()
    {
        if (Cur.Kind == Tok.Num) return _toks[_p++].Value;
        Expect(Tok.LParen);
        uint v = ParsePnum();
        Expect(Tok.RParen);
        return v;
    }

    // arth relop arth | arth irelop arth
    private FNode ParseRelation()
    {
        int at = Cur.Pos;
        ANode a0 = ParseArith(0);
        (ushort jmp, bool rev) = Cur.Kind switch
        {
            Tok.Gt => (BpfOp.Jgt, false),
            Tok.Geq => (BpfOp.Jge, false),
            Tok.Eq => (BpfOp.Jeq, false),
            Tok.Leq => (BpfOp.Jgt, true),
            Tok.Lt => (BpfOp.Jge, true),
            Tok.Neq => (BpfOp.Jeq, true),
            _ => (ushort.MaxValue, false),
        };
        if (jmp == ushort.MaxValue) throw Throw();
        _p++;
        ANode a1 = ParseArith(0);
        return new RelNode(jmp, a0, a1, rev, at);
    }

    private static int Prec(Tok k) => k switch
    {
        Tok.Pipe => 1,
        Tok.Amp => 2,
        Tok.Lsh or Tok.Rsh => 3,
        Tok.Plus or Tok.Minus => 4,
        Tok.Star or Tok.Slash => 5,
        _ => 0,
    };

    private static ushort AluOf(Tok k) => k switch
    {
        Tok.Pipe => BpfOp.Or, Tok.Amp => BpfOp.And, Tok.Lsh => BpfOp.Lsh, Tok.Rsh => BpfOp.Rsh, Tok.Plus => BpfOp.Add,
        Tok.Minus => BpfOp.Sub, Tok.Star => BpfOp.Mul, Tok.Slash => BpfOp.Div, Tok.Percent => BpfOp.Mod, _ => BpfOp.Xor,
    };

    private ANode ParseArith(int minPrec)
    {
        ANode left = ParseUnary();
        while (true)
        {
            int p = Prec(Cur.Kind);
            if (p == 0 || p <= minPrec) return left;
            ushort op = AluOf(Cur.Kind);
            _p++;
            ANode right = ParseArith(p);
            left = new ABin(op, left, right);
        }
    }

    private ANode ParseUnary()
    {
        ANode x;
        if (Cur.Kind == Tok.Minus)
        {
            int at = Cur.Pos;
            _p++;
            x = new ANeg(ParseUnary(), at);
            return x;
        }
        x = ParsePrimary();
        // '%' and '^' carry no precedence in grammar.y: bison shifts them, so they take what follows whole.
        if (Cur.Kind is Tok.Percent or Tok.Caret)
        {
            ushort op = AluOf(Cur.Kind);
            _p++;
            x = new ABin(op, x, ParseArith(0));
        }
        return x;
    }

    private ANode ParsePrimary()
    {
        Token t = Cur;
        switch (t.Kind)
        {
            case Tok.Num:
                _p++;
                return new ANum(t.Value, t.Pos);
            case Tok.Len:
                _p++;
                return new ALen(t.Pos);
            case Tok.LParen:
                {
                    _p++;
                    ANode inner = ParseArith(0);
                    Expect(Tok.RParen);
                    return inner;
                }
        }
        if (IsPname(t.Kind) && Peek().Kind == Tok.LBracket)
        {
            _p += 2;
            ANode idx = ParseArith(0);
            uint size = 1;
            if (Accept(Tok.Colon)) size = Expect(Tok.Num).Value;
            Expect(Tok.RBracket);
            return new ALoad(ProtoOf(t.Kind), idx, size, t.Pos);
        }
        throw Throw();
    }

    internal static Qp ProtoOf(Tok k) => k switch
    {
        Tok.Link => Qp.Link, Tok.Ip => Qp.Ip, Tok.Arp => Qp.Arp, Tok.Rarp => Qp.Rarp, Tok.Sctp => Qp.Sctp,
        Tok.Tcp => Qp.Tcp, Tok.Udp => Qp.Udp, Tok.Icmp => Qp.Icmp, Tok.Igmp => Qp.Igmp, Tok.Igrp => Qp.Igrp,
        Tok.Pim => Qp.Pim, Tok.Vrrp => Qp.Vrrp, Tok.Carp => Qp.Carp, Tok.Atalk => Qp.Atalk, Tok.Aarp => Qp.Aarp,
        Tok.Decnet => Qp.Decnet, Tok.Lat => Qp.Lat, Tok.Sca => Qp.Sca, Tok.Mopdl => Qp.Mopdl, Tok.Moprc => Qp.Moprc,
        Tok.Ip6 => Qp.Ipv6, Tok.Icmp6 => Qp.Icmpv6, Tok.Ah => Qp.Ah, Tok.Esp => Qp.Esp, Tok.Iso => Qp.Iso,
        Tok.Esis => Qp.Esis, Tok.Isis => Qp.Isis, Tok.L1 => Qp.IsisL1, Tok.L2 => Qp.IsisL2, Tok.Iih => Qp.IsisIih,
        Tok.Lsp => Qp.IsisLsp, Tok.Snp => Qp.IsisSnp, Tok.Csnp => Qp.IsisCsnp, Tok.Psnp => Qp.IsisPsnp,
        Tok.Clnp => Qp.Clnp, Tok.Stp => Qp.Stp, Tok.Ipx => Qp.Ipx, Tok.Netbeui => Qp.Netbeui, Tok.Radio => Qp.Radio,
        _ => Qp.Default,
    };
}

/// <summary>An expression that uses a part of the pcap-filter language this compiler does not implement.</summary>
public sealed class FilterNotSupportedException(string message, int position)
    : Exception(position >= 0 ? $"{message} (at character {position})" : message)
{
    public int Position { get; } = position;
}
