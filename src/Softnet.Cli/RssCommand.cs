using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Softnet.Nic;

namespace Softnet.Cli;

/// <summary>
/// <c>softnet rss SRC[:PORT] DST[:PORT]</c>: the Toeplitz hash a NIC computes for a flow and the RX queue the
/// indirection table sends it to. Numbers are taken as text and checked here so every bad input gets one clear
/// message and exit code 2.
/// </summary>
public static class RssCommand
{
    /// <summary>Exit code for bad input.</summary>
    public const int BadInput = 2;

    /// <summary>Default queue count: the kernel's DEFAULT_MAX_NUM_RSS_QUEUES.</summary>
    public const int DefaultQueues = 8;

    public static Command Create()
    {
        var cmd = new Command("rss", "Compute the RSS (Toeplitz) hash of a flow and the RX queue it lands on");
        var key = new Option<string?>("--key")
        {
            Description = "RSS key in hex, 40 or 52 bytes; ':' separators allowed, as ethtool -x prints keys (default: Microsoft's verification key)",
            HelpName = "HEX",
        };
        var queues = new Option<string?>("--queues")
        {
            Description = $"number of RX queues for an equal spread (ethtool -X equal N; default {DefaultQueues})",
            HelpName = "N",
        };
        var proto = new Option<string?>("--proto")
        {
            Description = "tcp, udp or ip (addresses only); default tcp when both ports are given, else ip",
            HelpName = "tcp|udp|ip",
        };
        var tableSize = new Option<string?>("--table-size")
        {
            Description = $"indirection table entries (default {RssIndirectionTable.DefaultSize})",
            HelpName = "N",
        };
        var weights = new Option<string?>("--weights")
        {
            Description = "per-queue weights, as ethtool -X weight w0 w1 ... (comma separated)",
            HelpName = "w0,w1,...",
        };
        var json = new Option<bool>("--json") { Description = "print the result as JSON" };
        var src = new Argument<string>("src") { Description = "source address, optionally with :PORT ([ADDR]:PORT for IPv6)", HelpName = "SRC[:PORT]" };
        var dst = new Argument<string>("dst") { Description = "destination address, optionally with :PORT ([ADDR]:PORT for IPv6)", HelpName = "DST[:PORT]" };
        cmd.Options.Add(key);
        cmd.Options.Add(queues);
        cmd.Options.Add(proto);
        cmd.Options.Add(tableSize);
        cmd.Options.Add(weights);
        cmd.Options.Add(json);
        cmd.Arguments.Add(src);
        cmd.Arguments.Add(dst);

        cmd.SetAction(parseResult =>
        {
            TextWriter output = parseResult.InvocationConfiguration.Output;
            TextWriter error = parseResult.InvocationConfiguration.Error;
            var request = new RssRequest(
                parseResult.GetValue(src) ?? "", parseResult.GetValue(dst) ?? "",
                parseResult.GetValue(key), parseResult.GetValue(queues), parseResult.GetValue(proto),
                parseResult.GetValue(tableSize), parseResult.GetValue(weights));
            if (!TryCompute(request, out RssResult result, out string message))
            {
                error.WriteLine($"softnet rss: {message}");
                return BadInput;
            }
            output.WriteLine(parseResult.GetValue(json) ? FormatJson(result) : FormatText(result));
            return 0;
        });
        return cmd;
    }

    /// <summary>The raw command line values.</summary>
    public sealed record RssRequest(string Src, string Dst, string? Key = null, string? Queues = null,
        string? Proto = null, string? TableSize = null, string? Weights = null);

    /// <summary>The computed answer.</summary>
    public sealed record RssResult(uint Hash, RssHashType Type, IPAddress Src, int? SrcPort, IPAddress Dst, int? DstPort,
        int Queue, int TableIndex, int Queues, int TableSize, uint[]? Weights, bool DefaultKey);

    /// <summary>Validates the request and computes hash and queue; on failure <paramref name="error"/> says why.</summary>
    public static bool TryCompute(RssRequest req, out RssResult result, out string error)
    {
        result = null!;
        if (!TryParseEndpoint(req.Src, out var src, out int? sport, out error)) { error = $"SRC: {error}"; return false; }
        if (!TryParseEndpoint(req.Dst, out var dst, out int? dport, out error)) { error = $"DST: {error}"; return false; }
        if (src.AddressFamily != dst.AddressFamily)
        {
            error = $"SRC {src} and DST {dst} are not the same address family";
            return false;
        }

        string proto = (req.Proto ?? (sport.HasValue && dport.HasValue ? "tcp" : "ip")).Trim().ToLowerInvariant();
        if (proto is not ("tcp" or "udp" or "ip"))
        {
            error = $"--proto '{req.Proto}' is not one of tcp, udp, ip";
            return false;
        }
        if (proto != "ip" && (!sport.HasValue || !dport.HasValue))
        {
            error = $"--proto {proto} needs both ports: write SRC:PORT DST:PORT ([ADDR]:PORT for IPv6)";
            return false;
        }

        byte[] key = RssHasher.DefaultKey.ToArray();
        if (req.Key is not null && !TryParseKey(req.Key, out key, out error)) return false;

        int tableSize = RssIndirectionTable.DefaultSize;
        if (req.TableSize is not null && !TryParseInt(req.TableSize, "--table-size", 1, RssIndirectionTable.MaxSize, out tableSize, out error))
            return false;

        bool queuesGiven = req.Queues is not null;
        int queues = DefaultQueues;
        if (queuesGiven && !TryParseInt(req.Queues!, "--queues", 1, 65536, out queues, out error)) return false;

        uint[]? weights = null;
        if (req.Weights is not null)
        {
            string[] parts = req.Weights.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0) { error = "--weights needs at least one weight"; return false; }
            weights = new uint[parts.Length];
            for (int i = 0; i < parts.Length; i++)
            {
                if (!uint.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out weights[i]))
                {
                    error = $"--weights: '{parts[i]}' is not a non-negative integer";
                    return false;
                }
            }
            if (queuesGiven && weights.Length > queues)
            {
                error = $"--weights gives {weights.Length} weights but there are only {queues} queues";
                return false;
            }
            if (!queuesGiven) queues = weights.Length;
        }

        RssIndirectionTable table;
        try
        {
            table = weights is null ? RssIndirectionTable.Equal(queues, tableSize) : RssIndirectionTable.Weighted(weights, tableSize);
        }
        catch (ArgumentException e)
        {
            error = $"--weights: {FirstSentence(e.Message)}";
            return false;
        }

        var hasher = new RssHasher(key);
        byte[] s = src.GetAddressBytes(), d = dst.GetAddressBytes();
        bool v6 = src.AddressFamily == AddressFamily.InterNetworkV6;
        uint hash;
        RssHashType type;
        if (proto == "ip")
        {
            hash = v6 ? hasher.HashV6(s, d) : hasher.HashV4(s, d);
            type = v6 ? RssHashType.Ipv6 : RssHashType.Ipv4;
            sport = dport = null;
        }
        else
        {
            ushort sp = (ushort)sport!.Value, dp = (ushort)dport!.Value;
            hash = v6 ? hasher.HashV6(s, d, sp, dp) : hasher.HashV4(s, d, sp, dp);
            type = (proto, v6) switch
            {
                ("tcp", false) => RssHashType.TcpIpv4,
                ("udp", false) => RssHashType.UdpIpv4,
                ("tcp", true) => RssHashType.TcpIpv6,
                _ => RssHashType.UdpIpv6,
            };
        }

        result = new RssResult(hash, type, src, sport, dst, dport, table.QueueFor(hash), table.IndexFor(hash),
            queues, tableSize, weights, req.Key is null);
        error = "";
        return true;
    }

    // ArgumentException appends " (Parameter 'x')"; the user needs only the sentence.
    private static string FirstSentence(string message)
    {
        int p = message.IndexOf(" (Parameter", StringComparison.Ordinal);
        return p < 0 ? message : message[..p];
    }

    private static bool TryParseInt(string text, string name, int min, int max, out int value, out string error)
    {
        if (!int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out value) || value < min || value > max)
        {
            error = $"{name} '{text}' must be an integer from {min} to {max}";
            return false;
        }
        error = "";
        return true;
    }

    /// <summary>Parses a key written as hex, optionally separated by ':' (ethtool -x prints it that way).</summary>
    public static bool TryParseKey(string text, out byte[] key, out string error)
    {
        key = [];
        string hex = text.Trim().Replace(":", "", StringComparison.Ordinal).Replace(" ", "", StringComparison.Ordinal);
        if (hex.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) hex = hex[2..];
        if (hex.Length % 2 != 0 || !hex.All(Uri.IsHexDigit))
        {
            error = "--key must be hex digits (e.g. 6d5a56da... or 6d:5a:56:da:...)";
            return false;
        }
        key = Convert.FromHexString(hex);
        if (key.Length != RssHasher.StandardKeyLength && key.Length != RssHasher.ExtendedKeyLength)
        {
            error = $"--key is {key.Length} bytes; an RSS key is {RssHasher.StandardKeyLength} bytes " +
                    $"(or {RssHasher.ExtendedKeyLength} for Intel ice/i40e)";
            return false;
        }
        error = "";
        return true;
    }

    /// <summary>Parses ADDR, IPv4:PORT, IPv6 or [IPv6]:PORT.</summary>
    public static bool TryParseEndpoint(string text, out IPAddress address, out int? port, out string error)
    {
        address = IPAddress.None;
        port = null;
        error = "";
        string s = text.Trim();
        string addr = s;
        string? portText = null;
        if (s.StartsWith('['))
        {
            int close = s.IndexOf(']');
            if (close < 0) { error = $"'{text}': missing ']'"; return false; }
            addr = s[1..close];
            string rest = s[(close + 1)..];
            if (rest.Length > 0)
            {
                if (rest[0] != ':') { error = $"'{text}': expected ':PORT' after ']'"; return false; }
                portText = rest[1..];
            }
        }
        else if (s.Count(c => c == ':') == 1)
        {
            int colon = s.IndexOf(':');
            addr = s[..colon];
            portText = s[(colon + 1)..];
        }

        // Only dotted IPv4 or IPv6 text: IPAddress.TryParse would also take "1" or "1.2" as IPv4.
        if (!IPAddress.TryParse(addr, out var parsed)
            || (parsed.AddressFamily == AddressFamily.InterNetwork && addr.Count(c => c == '.') != 3)
            || (parsed.AddressFamily == AddressFamily.InterNetworkV6 && !addr.Contains(':'))
            || (parsed.AddressFamily == AddressFamily.InterNetworkV6 && parsed.ScopeId != 0))
        {
            error = $"'{addr}' is not an IPv4 or IPv6 address";
            return false;
        }
        if (s.StartsWith('[') && parsed.AddressFamily != AddressFamily.InterNetworkV6)
        {
            error = $"'{text}': brackets are for IPv6 addresses";
            return false;
        }
        if (portText is not null)
        {
            if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int p) || p > 65535)
            {
                error = $"'{portText}' is not a port (0-65535)";
                return false;
            }
            port = p;
        }
        address = parsed;
        return true;
    }

    private static string Endpoint(IPAddress a, int? port) =>
        port is null ? a.ToString()
        : a.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{a}]:{port}" : $"{a}:{port}";

    /// <summary>One line: <c>hash 0x51ccc178  queue 0  (TCP/IPv4 66.9.149.187:2794 -> 161.142.100.80:1766, 8 queues, 128-entry table)</c>.</summary>
    public static string FormatText(RssResult r)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"hash 0x{r.Hash:x8}  queue {r.Queue}  (");
        sb.Append(CultureInfo.InvariantCulture, $"{r.Type.Label()} {Endpoint(r.Src, r.SrcPort)} -> {Endpoint(r.Dst, r.DstPort)}, ");
        sb.Append(CultureInfo.InvariantCulture, $"{r.Queues} queue{(r.Queues == 1 ? "" : "s")}, {r.TableSize}-entry table");
        if (r.Weights is not null) sb.Append(", weights ").Append(string.Join(',', r.Weights));
        if (!r.DefaultKey) sb.Append(", custom key");
        sb.Append(')');
        return sb.ToString();
    }

    /// <summary>The same result as a JSON object.</summary>
    public static string FormatJson(RssResult r)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = false }))
        {
            w.WriteStartObject();
            w.WriteString("hash", $"0x{r.Hash:x8}");
            w.WriteNumber("hashValue", r.Hash);
            w.WriteString("type", r.Type.Label());
            w.WriteString("src", r.Src.ToString());
            if (r.SrcPort is int sp) w.WriteNumber("srcPort", sp); else w.WriteNull("srcPort");
            w.WriteString("dst", r.Dst.ToString());
            if (r.DstPort is int dp) w.WriteNumber("dstPort", dp); else w.WriteNull("dstPort");
            w.WriteNumber("tableIndex", r.TableIndex);
            w.WriteNumber("queue", r.Queue);
            w.WriteNumber("queues", r.Queues);
            w.WriteNumber("tableSize", r.TableSize);
            if (r.Weights is not null)
            {
                w.WriteStartArray("weights");
                foreach (uint x in r.Weights) w.WriteNumberValue(x);
                w.WriteEndArray();
            }
            w.WriteBoolean("defaultKey", r.DefaultKey);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
