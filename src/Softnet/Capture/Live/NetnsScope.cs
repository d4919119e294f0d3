using System.Runtime.InteropServices;

namespace Softnet.Capture.Live;

/// <summary>
/// Runs the calling thread inside a named network namespace (/var/run/netns/NAME, as `ip netns` makes them) until
/// disposed, then back in the one it came from: sockets made in between belong to the named namespace for their
/// whole life, whichever thread uses them later (setns(2) changes only the calling thread). Null or empty: no change.
/// </summary>
public sealed class NetnsScope : IDisposable
{
    private const int CloneNewNet = 0x40000000;
    private readonly SafeHandle? _home;

    public NetnsScope(string? netns)
    {
        if (string.IsNullOrEmpty(netns)) return;
        string path = Path.Combine("/var/run/netns", netns);
        if (!File.Exists(path)) throw new LivePortException($"network namespace '{netns}' does not exist ({path}; see `ip netns list`)");
        _home = File.OpenHandle($"/proc/self/task/{Gettid()}/ns/net");
        using var target = File.OpenHandle(path);
        if (setns((int)target.DangerousGetHandle(), CloneNewNet) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            _home.Dispose();
            throw new LivePortException(errno == 1
                ? $"entering network namespace '{netns}' needs CAP_SYS_ADMIN (run as root)"
                : $"setns {path}: errno {errno}", errno);
        }
    }

    public void Dispose()
    {
        if (_home is null) return;
        setns((int)_home.DangerousGetHandle(), CloneNewNet);
        _home.Dispose();
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    [DllImport("libc")]
    private static extern int gettid();

    private static int Gettid() => gettid();
}
