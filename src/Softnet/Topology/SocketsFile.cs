using System.Globalization;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Transport;

using Softnet.Packets;

namespace Softnet.Topology;

/// <summary>
/// ns/NAME/sockets: the sockets a namespace's applications hold, one per line, '#' comments:
/// <c>udp ADDR:PORT</c> (a bound UDP socket whose reader reads every datagram) or <c>tcp listen ADDR:PORT</c> (a
/// listener whose reader accepts every connection and reads until EOF or reset), IPv6 as <c>[ADDR]:PORT</c>, then
/// optionally <c>rcvbuf BYTES</c> (SO_RCVBUF) and <c>cpu N</c> (the reader's CPU; without it, the first CPU of the
/// namespace's cpuset if it has one). Binds the kernel would refuse
/// (an address the namespace does not have, a port already taken) are rejected with file:line.
/// </summary>
public static class SocketsFile
{
    public static void Load(Namespace ns, string path)
    {
        var lines = File.ReadAllText(path).Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = StripComment(lines[i]);
            if (line.Length == 0) continue;
            ScenarioFormatException Err(string why) => new(path, i + 1, why);
            var t = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            int pos;
            bool tcp;
            if (t[0] == "udp") { tcp = false; pos = 1; }
            else if (t[0] == "tcp" && t.Length > 1 && t[1] == "listen") { tcp = true; pos = 2; }
            else if (t[0] == "tcp") throw Err("a TCP socket here is 'tcp listen ADDR:PORT' (connecting sockets are not modelled)");
            else throw Err($"unknown socket kind '{t[0]}' (expected 'udp ADDR:PORT' or 'tcp listen ADDR:PORT')");
            if (pos >= t.Length) throw Err("the socket needs ADDR:PORT");
            if (!SockAddr.TryParse(t[pos++], out var local, out string error)) throw Err(error);
            int? rcvbuf = null;
            int cpu = -1;
            while (pos < t.Length)
            {
                string opt = t[pos++];
                if (pos >= t.Length) throw Err($"'{opt}' needs a value");
                string v = t[pos++];
                switch (opt)
                {
                    case "rcvbuf":
                        if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int b)) throw Err($"rcvbuf '{v}' is not a byte count");
                        rcvbuf = b;
                        break;
                    case "cpu":
                        if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int c) || c > 1023) throw Err($"cpu '{v}' is not a CPU number");
                        cpu = c;
                        break;
                    default:
                        throw Err($"unknown socket option '{opt}' (expected rcvbuf BYTES, cpu N)");
                }
            }
            // The namespace's cpuset (a container's --cpuset-cpus): a reader with no CPU of its own runs on the set's
            // first CPU; one pinned outside the set could not be (sched_setaffinity fails with EINVAL).
            if (ns.CpuSet is { Count: > 0 } set)
            {
                if (cpu < 0) cpu = set[0];
                else if (!set.Contains(cpu))
                    throw Err($"cpu {cpu} is outside namespace '{ns.Name}'s cpuset {string.Join(',', set)} (sched_setaffinity would fail with EINVAL)");
            }
            // inet_bind: a specific IPv4 address must be one of the namespace's (or its broadcast/multicast) unless
            // ip_nonlocal_bind, which scenarios do not set.
            if (!local.V6 && !local.IsWildcard && (local.V4 >> 28) != 0xE
                && ns.Routing.LookupLocal(local.V4) is not { Type: RouteKind.Local or RouteKind.Broadcast })
                throw Err($"{local} is not an address of namespace '{ns.Name}' (bind would fail with EADDRNOTAVAIL)");
            // inet6_bind: a specific IPv6 address must be one of the namespace's (a v4-mapped one follows IPv4's rule).
            bool mapped = local.V6 && (local.Address >> 32) == 0xFFFF;
            if (local.V6 && !local.IsWildcard && !mapped && !Ipv6.IsMulticast(local.Address) && ns.FindAddress6(local.Address) == null)
                throw Err($"{local} is not an address of namespace '{ns.Name}' (bind would fail with EADDRNOTAVAIL)");
            Sock s = tcp ? new TcpListenSock(ns, line, local, rcvbuf, cpu) : new UdpSock(ns, line, local, rcvbuf, cpu);
            if (ns.Sockets.Add(s) is { } clash) throw Err(clash);
        }
    }

    /// <summary>The line without its comment, trimmed: what sockets.txt repeats.</summary>
    public static string StripComment(string raw)
    {
        int hash = raw.IndexOf('#');
        return (hash >= 0 ? raw[..hash] : raw).Trim();
    }
}
