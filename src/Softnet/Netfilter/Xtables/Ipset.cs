using System.Globalization;
using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// The ipsets of one namespace (ip_set's per-netns list), loaded from `ipset save` text: create/add lines for
/// hash:ip, hash:net, hash:ip,port, hash:net,port, hash:ip,port,ip, hash:ip,port,net, bitmap:port and list:set,
/// with the timeout, counters, comment, nomatch extensions.
/// </summary>
public sealed class IpsetCollection
{
    private readonly Dictionary<string, IpSet> _sets = new(StringComparer.Ordinal);

    public IpSet? this[string name] => _sets.GetValueOrDefault(name);
    public IEnumerable<IpSet> Sets => _sets.Values;
    public int Count => _sets.Count;

    public void LoadFile(string path) => Load(File.ReadAllText(path), path);

    /// <summary>`ipset restore` of `ipset save` output; any error names file:line.</summary>
    public void Load(string text, string file = "<ipset>")
    {
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r').Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var tok = IptablesSaveParser.Tokenize(line, file, i + 1);
            IptablesParseException Err(string m) => new(file, i + 1, m);
            string cmd = tok[0];
            if (cmd is "create" or "-N" or "n")
            {
                if (tok.Count < 3) throw Err("Missing mandatory argument: set type");
                string name = tok[1];
                if (name.Length > 31) throw Err($"Syntax error: setname '{name}' is longer than 31 characters");
                if (_sets.ContainsKey(name)) throw Err("Set cannot be created: set with the same name already exists");
                var set = IpSet.Create(name, tok[2]) ?? throw Err($"Syntax error: Unknown set type {tok[2]}");
                set.ParseCreate(tok, 3, Err, this);
                _sets.Add(name, set);
            }
            else if (cmd is "add" or "-A" or "a")
            {
                if (tok.Count < 3) throw Err("Missing mandatory argument: element");
                var set = this[tok[1]] ?? throw Err($"The set with the given name does not exist");
                set.ParseAdd(tok, 2, Err, this);
            }
            else if (cmd is "flush" or "-F") { if (tok.Count > 1) this[tok[1]]?.Flush(); else foreach (var s in _sets.Values) s.Flush(); }
            else if (cmd is "destroy" or "-X" or "x") { if (tok.Count > 1) _sets.Remove(tok[1]); else _sets.Clear(); }
            else throw Err($"Syntax error: unknown command '{cmd}'");
        }
    }

    /// <summary>Sets in `ipset save` form (element order is the insertion order, not the kernel's hash order).</summary>
    public string Save()
    {
        var sb = new StringBuilder();
        foreach (var s in _sets.Values) s.Save(sb);
        return sb.ToString();
    }
}

/// <summary>What a match asks of a set: dimension directions and counter conditions (struct ip_set_adt_opt).</summary>
internal struct IpsetTestOpt
{
    /// <summary>Number of src/dst directions given.</summary>
    public int Dim;
    /// <summary>Bit i set: dimension i takes the packet's source (IPSET_DIM_*_SRC).</summary>
    public int Flags;
    public bool ReturnNomatch, SkipCounterUpdate, SkipSubcounterUpdate, MatchCounters;
    public byte PacketsOp, BytesOp;
    public ulong Packets, Bytes;
}

/// <summary>One element's data: nomatch flag and extensions.</summary>
internal sealed class IpsetElem
{
    public bool Nomatch;
    public long TimeoutSec = -1;
    public long Packets, Bytes;
    public string? Comment;
}

/// <summary>A set (struct ip_set + its type's kernel functions).</summary>
public abstract class IpSet
{
    public string Name { get; }
    public abstract string TypeName { get; }
    public abstract int Dimension { get; }
    internal virtual bool HasNomatch => false;
    private protected long TimeoutDefault = -1;
    private protected bool Counters, Comments;
    private protected readonly List<string> CreateOpts = new();
    /// <summary>Packet time the set was first consulted: element timeouts count from there (loaded state).</summary>
    private long _baseNs = long.MinValue;

    private protected IpSet(string name) => Name = name;

    internal static IpSet? Create(string name, string type) => type switch
    {
        "hash:ip" => new HashIpSet(name, type, "ip"),
        "hash:net" => new HashIpSet(name, type, "net"),
        "hash:ip,port" => new HashIpSet(name, type, "ip", "port"),
        "hash:net,port" => new HashIpSet(name, type, "net", "port"),
        "hash:ip,port,ip" => new HashIpSet(name, type, "ip", "port", "ip"),
        "hash:ip,port,net" => new HashIpSet(name, type, "ip", "port", "net"),
        "hash:net,net" => new HashIpSet(name, type, "net", "net"),
        "bitmap:port" => new BitmapPortSet(name),
        "list:set" => new ListSet(name),
        _ => null,
    };

    internal virtual void ParseCreate(List<string> tok, int i, Func<string, IptablesParseException> err, IpsetCollection all)
    {
        while (i < tok.Count)
        {
            string o = tok[i++];
            switch (o)
            {
                case "family":
                    string f = Need(tok, ref i, o, err);
                    if (f != "inet") throw err($"Syntax error: only family inet is supported, not '{f}'");
                    break;
                case "hashsize" or "maxelem" or "bucketsize" or "initval" or "size" or "markmask":
                    Need(tok, ref i, o, err); break;
                case "timeout": TimeoutDefault = ParseU(Need(tok, ref i, o, err), err); CreateOpts.Add("timeout " + TimeoutDefault); break;
                case "counters": Counters = true; CreateOpts.Add(o); break;
                case "comment": Comments = true; CreateOpts.Add(o); break;
                case "skbinfo" or "forceadd": CreateOpts.Add(o); break;
                default:
                    if (!ParseCreateOption(o, tok, ref i, err)) throw err($"Syntax error: Unknown argument: '{o}'");
                    break;
            }
        }
    }

    private protected virtual bool ParseCreateOption(string o, List<string> tok, ref int i, Func<string, IptablesParseException> err) => false;

    private protected static string Need(List<string> tok, ref int i, string o, Func<string, IptablesParseException> err)
        => i < tok.Count ? tok[i++] : throw err($"Missing mandatory argument of '{o}'");

    private protected static long ParseU(string s, Func<string, IptablesParseException> err)
        => long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v : throw err($"Syntax error: '{s}' is invalid as number");

    internal void ParseAdd(List<string> tok, int i, Func<string, IptablesParseException> err, IpsetCollection all)
    {
        var e = new IpsetElem { TimeoutSec = TimeoutDefault };
        string elem = tok[i++];
        while (i < tok.Count)
        {
            string o = tok[i++];
            switch (o)
            {
                case "timeout": e.TimeoutSec = ParseU(Need(tok, ref i, o, err), err); break;
                case "packets": e.Packets = ParseU(Need(tok, ref i, o, err), err); break;
                case "bytes": e.Bytes = ParseU(Need(tok, ref i, o, err), err); break;
                case "comment": e.Comment = Need(tok, ref i, o, err); break;
                case "nomatch" when HasNomatch: e.Nomatch = true; break;
                case "skbmark" or "skbprio" or "skbqueue": Need(tok, ref i, o, err); break;
                default: throw err($"Syntax error: Unknown argument: '{o}'");
            }
        }
        AddElement(elem, e, err, all);
    }

    private protected abstract void AddElement(string text, IpsetElem e, Func<string, IptablesParseException> err, IpsetCollection all);
    internal abstract void Flush();
    internal abstract void Save(StringBuilder sb);

    /// <summary>ip_set_test: 1 match, 0 no match (nomatch elements and --return-nomatch handled here).</summary>
    internal bool Test(ref PacketContext p, in IpsetTestOpt opt)
    {
        if (opt.Dim < Dimension) return false;
        if (_baseNs == long.MinValue) _baseNs = p.TimestampNs;
        int ret = Kadt(ref p, opt);
        if (opt.ReturnNomatch && HasNomatch && (ret > 0 || ret == -1)) ret = -ret;
        return ret > 0;
    }

    /// <summary>The type's test: 1 matching element, -1 a nomatch element (-ENOTEMPTY), 0 none.</summary>
    private protected abstract int Kadt(ref PacketContext p, in IpsetTestOpt opt);

    /// <summary>ip_set_match_extensions: timeout, then counters (update, then the --packets/--bytes conditions).</summary>
    private protected bool MatchExtensions(IpsetElem e, ref PacketContext p, in IpsetTestOpt opt)
    {
        if (e.TimeoutSec > 0 && p.TimestampNs - _baseNs >= e.TimeoutSec * 1_000_000_000L) return false;
        if (Counters)
        {
            if (!opt.SkipCounterUpdate) { e.Packets++; e.Bytes += p.Length; }
            if (opt.MatchCounters && !(MatchCounter(e.Packets, opt.Packets, opt.PacketsOp) && MatchCounter(e.Bytes, opt.Bytes, opt.BytesOp)))
                return false;
        }
        return true;
    }

    private static bool MatchCounter(long counter, ulong value, byte op) => op switch
    {
        SetMatch.CounterEq => (ulong)counter == value,
        SetMatch.CounterNe => (ulong)counter != value,
        SetMatch.CounterLt => (ulong)counter < value,
        SetMatch.CounterGt => (ulong)counter > value,
        _ => true,
    };

    private protected void SaveCreate(StringBuilder sb, string extra)
    {
        sb.Append("create ").Append(Name).Append(' ').Append(TypeName).Append(extra);
        foreach (var o in CreateOpts) sb.Append(' ').Append(o);
        sb.Append('\n');
    }

    private protected void SaveExt(StringBuilder sb, IpsetElem e)
    {
        if (e.TimeoutSec >= 0 && TimeoutDefault >= 0) sb.Append(" timeout ").Append(e.TimeoutSec);
        if (Counters) sb.Append(" packets ").Append(e.Packets).Append(" bytes ").Append(e.Bytes);
        if (e.Comment != null) sb.Append(" comment \"").Append(e.Comment).Append('"');
        if (e.Nomatch) sb.Append(" nomatch");
    }

    /// <summary>ip_set_get_ip4_port: protocol and port of the packet (ICMP: type &lt;&lt; 8 | code); false for a
    /// non-first fragment of a protocol with ports.</summary>
    internal static bool GetPort(ref PacketContext p, bool src, out ushort port, out byte proto)
    {
        proto = p.Protocol;
        port = 0;
        if (p.IsFragment) return proto is not (6 or 17 or 132 or 136 or 1);
        switch (proto)
        {
            case 6 or 17: port = src ? p.SrcPort : p.DstPort; break;
            case 132 or 136:
                var pkt = p.Packet;
                int off = p.IpHeaderLength;
                if (pkt.Length < off + 4) return false;
                port = (ushort)(pkt[off + (src ? 0 : 2)] << 8 | pkt[off + (src ? 1 : 3)]);
                break;
            case 1: port = (ushort)(p.IcmpType << 8 | p.IcmpCode); break;
        }
        return true;
    }
}

/// <summary>The hash:* types: dimensions of ip, net (address + prefix) and port (protocol + port).</summary>
internal sealed class HashIpSet : IpSet
{
    private readonly string _type;
    private readonly string[] _dims;
    private uint _netmask = 0xFFFFFFFF;
    private int _netmaskLen = 32;
    private readonly Dictionary<UInt128, IpsetElem> _elems = new();
    private readonly List<UInt128> _order = new();
    /// <summary>Prefix lengths present per net dimension, most specific first (the kernel's nets[] order).</summary>
    private int[][] _cidrs;
    private readonly int _netDims;
    private readonly byte[] _kinds;

    public override string TypeName => _type;
    public override int Dimension => _dims.Length;
    internal override bool HasNomatch => _netDims > 0;

    public HashIpSet(string name, string type, params string[] dims) : base(name)
    {
        _type = type;
        _dims = dims;
        _kinds = dims.Select(d => d switch { "ip" => (byte)0, "net" => (byte)1, _ => (byte)2 }).ToArray();
        _netDims = dims.Count(d => d == "net");
        _cidrs = new int[_netDims][];
        for (int i = 0; i < _netDims; i++) _cidrs[i] = Array.Empty<int>();
    }

    private protected override bool ParseCreateOption(string o, List<string> tok, ref int i, Func<string, IptablesParseException> err)
    {
        if (o == "netmask" && _dims[0] == "ip")
        {
            string v = Need(tok, ref i, o, err);
            if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out _netmaskLen) || _netmaskLen is < 1 or > 32)
                throw err($"Syntax error: netmask '{v}' is out of range");
            _netmask = Ipv4.Mask(_netmaskLen);
            CreateOpts.Insert(0, "netmask " + _netmaskLen);
            return true;
        }
        return false;
    }

    internal override void Flush()
    {
        _elems.Clear();
        _order.Clear();
        for (int i = 0; i < _netDims; i++) _cidrs[i] = Array.Empty<int>();
    }

    private struct Parsed { public uint Ip; public int Cidr; public byte Proto; public ushort Port; }

    private protected override void AddElement(string text, IpsetElem e, Func<string, IptablesParseException> err, IpsetCollection all)
    {
        var parts = text.Split(',');
        if (parts.Length != _dims.Length) throw err($"Syntax error: Elem separator in {text}, but settype {_type} supports none.");
        var vals = new Parsed[_dims.Length];
        uint rangeLo = 0, rangeHi = 0;
        for (int d = 0; d < _dims.Length; d++)
        {
            string s = parts[d];
            switch (_dims[d])
            {
                case "ip":
                {
                    int dash = s.IndexOf('-'), slash = s.IndexOf('/');
                    if (dash > 0)
                    {
                        if (!Ipv4.TryParse(s[..dash], out rangeLo) || !Ipv4.TryParse(s[(dash + 1)..], out rangeHi) || rangeHi < rangeLo)
                            throw err($"Syntax error: cannot parse {s} as an IPv4 range");
                    }
                    else if (slash > 0)
                    {
                        if (!Ipv4.TryParse(s[..slash], out var a) || !int.TryParse(s[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int len) || len > 32)
                            throw err($"Syntax error: cannot parse {s} as an IPv4 CIDR");
                        rangeLo = a & Ipv4.Mask(len);
                        rangeHi = rangeLo | ~Ipv4.Mask(len);
                    }
                    else
                    {
                        if (!Ipv4.TryParse(s, out rangeLo)) throw err($"Syntax error: cannot parse {s}: resolving to IPv4 address failed");
                        rangeHi = rangeLo;
                    }
                    vals[d].Ip = rangeLo;
                    vals[d].Cidr = 32;
                    break;
                }
                case "net":
                {
                    int slash = s.IndexOf('/');
                    int len = 32;
                    if (!Ipv4.TryParse(slash < 0 ? s : s[..slash], out var a)
                        || (slash >= 0 && (!int.TryParse(s[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out len) || len is < 1 or > 32)))
                        throw err($"Syntax error: cannot parse {s} as an IPv4 network");
                    vals[d].Ip = a & Ipv4.Mask(len);
                    vals[d].Cidr = len;
                    break;
                }
                default:
                {
                    int colon = s.IndexOf(':');
                    byte proto = 6;
                    string ps = s;
                    if (colon >= 0)
                    {
                        string pn = s[..colon];
                        ps = s[(colon + 1)..];
                        if (!TryProto(pn, out proto)) throw err($"Syntax error: cannot parse '{pn}' as a protocol");
                    }
                    vals[d].Proto = proto;
                    if (proto == 1)
                    {
                        if (!TryIcmp(ps, out var tc)) throw err($"Syntax error: cannot parse {ps} as ICMP type/code");
                        vals[d].Port = tc;
                    }
                    else if (proto is 6 or 17 or 132 or 136)
                    {
                        if (!ushort.TryParse(ps, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && !TryService(ps, out port))
                            throw err($"Syntax error: cannot parse '{ps}' as a port");
                        vals[d].Port = port;
                    }
                    else if (ps != "0") throw err($"Syntax error: only port 0 is valid for protocol {pn(proto)}");
                    break;
                }
            }
        }
        // An ip dimension given as a range or CIDR adds every address (hash:ip with netmask adds each network once).
        int ipDim = Array.IndexOf(_dims, "ip");
        if (ipDim < 0) { Insert(vals, e); return; }
        if (rangeHi - rangeLo > 65536) throw err("Hash is full, cannot add more elements");
        for (ulong a = rangeLo & _netmask; a <= rangeHi; a = (a | ~(ulong)_netmask & 0xFFFFFFFF) + 1)
        {
            vals[ipDim].Ip = (uint)a & _netmask;
            Insert(vals, new IpsetElem { Nomatch = e.Nomatch, TimeoutSec = e.TimeoutSec, Packets = e.Packets, Bytes = e.Bytes, Comment = e.Comment });
        }
    }

    private static string pn(byte p) => Protocols.Name(p);

    private static bool TryProto(string s, out byte proto)
    {
        if (byte.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out proto)) return true;
        foreach (var n in new[] { "tcp", "udp", "icmp", "sctp", "udplite", "gre", "esp", "ah", "ipv6", "igmp", "ospf", "pim", "vrrp", "dccp" })
            if (n == s) { proto = (byte)(n switch { "tcp" => 6, "udp" => 17, "icmp" => 1, "sctp" => 132, "udplite" => 136, "gre" => 47, "esp" => 50, "ah" => 51, "ipv6" => 41, "igmp" => 2, "ospf" => 89, "pim" => 103, "vrrp" => 112, _ => 33 }); return true; }
        return false;
    }

    private static readonly (string Name, byte Type, byte Code)[] IcmpNames =
    {
        ("echo-reply", 0, 0), ("network-unreachable", 3, 0), ("host-unreachable", 3, 1), ("protocol-unreachable", 3, 2),
        ("port-unreachable", 3, 3), ("fragmentation-needed", 3, 4), ("source-route-failed", 3, 5), ("network-unknown", 3, 6),
        ("host-unknown", 3, 7), ("network-prohibited", 3, 9), ("host-prohibited", 3, 10), ("TOS-network-unreachable", 3, 11),
        ("TOS-host-unreachable", 3, 12), ("communication-prohibited", 3, 13), ("host-precedence-violation", 3, 14),
        ("precedence-cutoff", 3, 15), ("source-quench", 4, 0), ("network-redirect", 5, 0), ("host-redirect", 5, 1),
        ("TOS-network-redirect", 5, 2), ("TOS-host-redirect", 5, 3), ("echo-request", 8, 0), ("router-advertisement", 9, 0),
        ("router-solicitation", 10, 0), ("ttl-zero-during-transit", 11, 0), ("ttl-zero-during-reassembly", 11, 1),
        ("ip-header-bad", 12, 0), ("required-option-missing", 12, 1), ("timestamp-request", 13, 0), ("timestamp-reply", 14, 0),
        ("address-mask-request", 17, 0), ("address-mask-reply", 18, 0),
    };

    private static bool TryIcmp(string s, out ushort tc)
    {
        foreach (var (n, t, c) in IcmpNames) if (n == s) { tc = (ushort)(t << 8 | c); return true; }
        tc = 0;
        int slash = s.IndexOf('/');
        if (slash < 0 || !byte.TryParse(s[..slash], NumberStyles.None, CultureInfo.InvariantCulture, out byte ty)
            || !byte.TryParse(s[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out byte co)) return false;
        tc = (ushort)(ty << 8 | co);
        return true;
    }

    private static bool TryService(string s, out ushort port)
    {
        port = s switch { "ssh" => 22, "http" => 80, "https" => 443, "domain" => 53, "ntp" => 123, "smtp" => 25, "ftp" => 21, _ => 0 };
        return port != 0;
    }

    private static string IcmpText(ushort tc)
    {
        foreach (var (n, t, c) in IcmpNames) if ((t << 8 | c) == tc) return n;
        return $"{tc >> 8}/{tc & 0xFF}";
    }

    private static int Width(string dim) => dim switch { "ip" => 32, "net" => 40, _ => 24 };

    /// <summary>The element key: the dimensions packed side by side (ip 32 bits, net 32 + prefix, port proto + port).</summary>
    private UInt128 Key(ReadOnlySpan<Parsed> v)
    {
        UInt128 k = 0;
        int bits = 0;
        for (int d = 0; d < _kinds.Length; d++)
        {
            ulong part = _kinds[d] switch
            {
                0 => v[d].Ip,
                1 => v[d].Ip | (ulong)v[d].Cidr << 32,
                _ => v[d].Proto | (ulong)v[d].Port << 8,
            };
            k |= (UInt128)part << bits;
            bits += _kinds[d] switch { 0 => 32, 1 => 40, _ => 24 };
        }
        return k;
    }

    private void Insert(Parsed[] v, IpsetElem e)
    {
        var k = Key(v);
        if (!_elems.ContainsKey(k)) _order.Add(k);
        _elems[k] = e;
        int n = 0;
        for (int d = 0; d < _dims.Length; d++)
        {
            if (_dims[d] != "net") continue;
            if (Array.IndexOf(_cidrs[n], v[d].Cidr) < 0)
                _cidrs[n] = _cidrs[n].Append(v[d].Cidr).OrderByDescending(c => c).ToArray();
            n++;
        }
    }

    internal override void Save(StringBuilder sb)
    {
        string extra = " family inet hashsize 1024 maxelem 65536";
        SaveCreate(sb, extra);
        foreach (var k in _order)
        {
            var e = _elems[k];
            sb.Append("add ").Append(Name).Append(' ').Append(ElemText(k));
            SaveExt(sb, e);
            sb.Append('\n');
        }
    }

    private string ElemText(UInt128 k)
    {
        var sb = new StringBuilder();
        int bits = 0;
        for (int d = 0; d < _dims.Length; d++)
        {
            int width = Width(_dims[d]);
            ulong part = (ulong)((k >> bits) & (((UInt128)1 << width) - 1));
            bits += width;
            if (d > 0) sb.Append(',');
            switch (_dims[d])
            {
                case "ip": sb.Append(Ipv4.Format((uint)part)); break;
                case "net":
                    sb.Append(Ipv4.Format((uint)part));
                    if ((int)(part >> 32) != 32) sb.Append('/').Append((int)(part >> 32));
                    break;
                default:
                    byte proto = (byte)part;
                    ushort port = (ushort)(part >> 8);
                    sb.Append(Protocols.Name(proto)).Append(':').Append(proto == 1 ? IcmpText(port) : port.ToString(CultureInfo.InvariantCulture));
                    break;
            }
        }
        return sb.ToString();
    }

    private protected override int Kadt(ref PacketContext p, in IpsetTestOpt opt)
    {
        Span<Parsed> v = stackalloc Parsed[_dims.Length];
        for (int d = 0; d < _kinds.Length; d++)
        {
            bool src = (opt.Flags & (1 << d)) != 0;
            switch (_kinds[d])
            {
                case 0: v[d].Ip = (src ? p.Src : p.Dst) & _netmask; v[d].Cidr = 32; break;
                case 1: v[d].Ip = src ? p.Src : p.Dst; break;
                default:
                    if (!GetPort(ref p, src, out v[d].Port, out v[d].Proto)) return 0;
                    break;
            }
        }
        if (_netDims == 0) return Lookup(v, ref p, opt);
        // mtype_test_cidrs: every combination of present prefix lengths, most specific first.
        return TestCidrs(v, 0, 0, ref p, opt);
    }

    private int TestCidrs(Span<Parsed> v, int d, int netIndex, ref PacketContext p, in IpsetTestOpt opt)
    {
        while (d < _kinds.Length && _kinds[d] != 1) d++;
        if (d == _kinds.Length) return Lookup(v, ref p, opt);
        uint addr = v[d].Ip;
        foreach (int c in _cidrs[netIndex])
        {
            v[d].Ip = addr & Ipv4.Mask(c);
            v[d].Cidr = c;
            int r = TestCidrs(v, d + 1, netIndex + 1, ref p, opt);
            if (r != 0) { v[d].Ip = addr; return r; }
        }
        v[d].Ip = addr;
        return 0;
    }

    private int Lookup(Span<Parsed> v, ref PacketContext p, in IpsetTestOpt opt)
    {
        if (!_elems.TryGetValue(Key(v), out var e)) return 0;
        if (!MatchExtensions(e, ref p, opt)) return 0;
        return e.Nomatch ? -1 : 1;
    }
}

/// <summary>bitmap:port: one bit per port of the range; the packet's port of any protocol with ports.</summary>
internal sealed class BitmapPortSet : IpSet
{
    private int _first = -1, _last = -1;
    private readonly SortedDictionary<int, IpsetElem> _ports = new();
    public override string TypeName => "bitmap:port";
    public override int Dimension => 1;

    public BitmapPortSet(string name) : base(name) { }

    private protected override bool ParseCreateOption(string o, List<string> tok, ref int i, Func<string, IptablesParseException> err)
    {
        if (o != "range") return false;
        string v = Need(tok, ref i, o, err);
        int dash = v.IndexOf('-');
        if (dash < 0 || !int.TryParse(v[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out _first)
            || !int.TryParse(v[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out _last) || _last > 65535 || _last < _first)
            throw err($"Syntax error: cannot parse port range '{v}'");
        return true;
    }

    internal override void ParseCreate(List<string> tok, int i, Func<string, IptablesParseException> err, IpsetCollection all)
    {
        base.ParseCreate(tok, i, err, all);
        if (_first < 0) throw err("Missing mandatory argument: range");
    }

    internal override void Flush() => _ports.Clear();

    private protected override void AddElement(string text, IpsetElem e, Func<string, IptablesParseException> err, IpsetCollection all)
    {
        string s = text;
        int colon = s.IndexOf(':');
        if (colon >= 0) s = s[(colon + 1)..];
        int dash = s.IndexOf('-');
        if (!int.TryParse(dash < 0 ? s : s[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out int lo)) throw err($"Syntax error: cannot parse '{text}' as a port");
        int hi = lo;
        if (dash >= 0 && !int.TryParse(s[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out hi)) throw err($"Syntax error: cannot parse '{text}' as a port");
        if (lo < _first || hi > _last) throw err("Element is out of the range of the set");
        for (int port = lo; port <= hi; port++) _ports[port] = new IpsetElem { TimeoutSec = e.TimeoutSec, Packets = e.Packets, Bytes = e.Bytes, Comment = e.Comment };
    }

    internal override void Save(StringBuilder sb)
    {
        SaveCreate(sb, $" range {_first}-{_last}");
        foreach (var (port, e) in _ports)
        {
            sb.Append("add ").Append(Name).Append(' ').Append(port);
            SaveExt(sb, e);
            sb.Append('\n');
        }
    }

    private protected override int Kadt(ref PacketContext p, in IpsetTestOpt opt)
    {
        // bitmap_port_kadt: only protocols with ports (TCP, UDP, SCTP, UDPlite).
        if (!GetPort(ref p, (opt.Flags & 1) != 0, out ushort port, out byte proto) || proto is not (6 or 17 or 132 or 136)) return 0;
        if (port < _first || port > _last || !_ports.TryGetValue(port, out var e)) return 0;
        return MatchExtensions(e, ref p, opt) ? 1 : 0;
    }
}

/// <summary>list:set: the first member set that matches.</summary>
internal sealed class ListSet : IpSet
{
    private readonly List<IpSet> _members = new();
    public override string TypeName => "list:set";
    public override int Dimension => 1;

    public ListSet(string name) : base(name) { }

    internal override void Flush() => _members.Clear();

    private protected override void AddElement(string text, IpsetElem e, Func<string, IptablesParseException> err, IpsetCollection all)
    {
        var s = all[text] ?? throw err($"Set to be added/deleted/tested as element does not exist.");
        if (s is ListSet) throw err("Set to be added/deleted/tested as element is a list:set.");
        _members.Add(s);
    }

    internal override void Save(StringBuilder sb)
    {
        SaveCreate(sb, " size 8");
        foreach (var m in _members) sb.Append("add ").Append(Name).Append(' ').Append(m.Name).Append('\n');
    }

    private protected override int Kadt(ref PacketContext p, in IpsetTestOpt opt)
    {
        foreach (var m in _members)
            if (m.Test(ref p, opt)) return 1;
        return 0;
    }
}
