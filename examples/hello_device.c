/* hello_device: the smallest program on the moeforge runtime.
 *
 * Links only libmoeforge (no Lua, no NVRTC, no libcuda: the driver is loaded
 * at run time), so it starts anywhere and says what it found:
 *   $ ./build/examples/hello_device
 *   moeforge 0.1.0: no CUDA driver (libcuda.so.1 not found): cannot load ...
 * Build against an installed moeforge with:
 *   cc hello_device.c $(pkg-config --cflags --libs moeforge)
 */
#include <moeforge.h>
#include <stdio.h>

int main(void)
{
    mf_context *ctx;
    mf_status s = mf_context_create(0, &ctx);
    if (s != MF_OK) {
        printf("moeforge %s: %s: %s\n", mf_version(), mf_status_string(s), mf_last_error());
        return 0;
    }
    mf_device_info info;
    mf_context_info(ctx, &info);
    printf("moeforge %s: device 0: %s (%s, %d SMs)\n", mf_version(), info.name, info.arch,
           info.sm_count);
    mf_context_destroy(ctx);
    return 0;
}
