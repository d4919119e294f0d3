using System.Globalization;
using System.Net;

namespace Softnet.KernelTests.Support;

/// <summary>
/// One line of a scenario's ns/&lt;name&gt;/sockets file: <c>udp ADDR:PORT</c> (a bound UDP socket whose reader reads
/// every datagram) or <c>tcp listen ADDR:PORT</c> (a listener whose reader accepts every connection and reads it to EOF
/// or reset, then closes its side). IPv6 as <c>[ADDR]:PORT</c>; 0.0.0.0 / [::] bind the wildcard. Optional trailing
/// <c>rcvbuf BYTES</c> (SO_RCVBUF before bind/listen) and <c>cpu N</c> (the reader's CPU; the kernel harness only
/// records it, its readers share one process).
/// </summary>
/// <param name="Line">The line as sockets.txt repeats it: comment stripped, trimmed.</param>
public sealed record SocketSpec(string Line, bool Tcp, string Address, bool V6, int Port, int? RcvBuf, int? Cpu)
{
    /// <summary>Parses a sockets file; '#' starts a comment, blank lines are skipped. Errors name the line.</summary>
    public static List<SocketSpec> ParseFile(string text, string name = "sockets")
    {
        var specs = new List<SocketSpec>();
        int n = 0;
        foreach (var raw in text.Split('\n'))
        {
            n++;
            int hash = raw.IndexOf('#');
            string line = (hash >= 0 ? raw[..hash] : raw).Trim();
            if (line.Length == 0) continue;
            try
            {
                specs.Add(Parse(line));
            }
            catch (FormatException e)
            {
                throw new InvalidDataException($"{name}:{n}: {e.Message}: '{line}'");
            }
        }
        return specs;
    }

    /// <summary>Parses one socket line (already stripped of its comment).</summary>
    public static SocketSpec Parse(string line)
    {
        var t = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        int i = 0;
        bool tcp;
        if (t.Length >= 2 && t[0] == "udp") { tcp = false; i = 1; }
        else if (t.Length >= 3 && t[0] == "tcp" && t[1] == "listen") { tcp = true; i = 2; }
        else throw new FormatException("expected `udp ADDR:PORT` or `tcp listen ADDR:PORT`");
        var (addr, v6, port) = ParseEndpoint(t[i++]);
        int? rcvbuf = null, cpu = null;
        while (i < t.Length)
        {
            string key = t[i++];
            if (i >= t.Length) throw new FormatException($"`{key}` needs a value");
            if (!int.TryParse(t[i++], NumberStyles.None, CultureInfo.InvariantCulture, out int v))
                throw new FormatException($"`{key}` wants a number");
            switch (key)
            {
                case "rcvbuf": rcvbuf = v; break;
                case "cpu": cpu = v; break;
                default: throw new FormatException($"unknown option `{key}`");
            }
        }
        return new SocketSpec(line, tcp, addr, v6, port, rcvbuf, cpu);
    }

    /// <summary>ADDR:PORT or [ADDR]:PORT.</summary>
    private static (string Addr, bool V6, int Port) ParseEndpoint(string s)
    {
        string addr, port;
        bool v6;
        if (s.StartsWith('['))
        {
            int close = s.IndexOf("]:", StringComparison.Ordinal);
            if (close < 0) throw new FormatException("IPv6 endpoint wants [ADDR]:PORT");
            addr = s[1..close];
            port = s[(close + 2)..];
            v6 = true;
        }
        else
        {
            int colon = s.LastIndexOf(':');
            if (colon < 0) throw new FormatException("endpoint wants ADDR:PORT");
            addr = s[..colon];
            port = s[(colon + 1)..];
            v6 = false;
        }
        if (!IPAddress.TryParse(addr, out var ip) || (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6) != v6)
            throw new FormatException($"bad address '{addr}'");
        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out int p) || p > 65535)
            throw new FormatException($"bad port '{port}'");
        return (addr, v6, p);
    }
}
